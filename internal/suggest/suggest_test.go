package suggest

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"connection", "timeout", "busy_loading", "cluster_down"}
	for _, tc := range []struct{ in, want string }{
		{"conection", "connection"},
		{"timeot", "timeout"},
		{"busy_loadin", "busy_loading"},
		{"clusterdown", "cluster_down"},
		{"xyz", ""}, // nothing close
		{"connection", "connection"},
		{"", ""},
	} {
		if got := Closest(tc.in, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Closest("a", nil); got != "" {
		t.Errorf("no candidates: got %q", got)
	}
}
