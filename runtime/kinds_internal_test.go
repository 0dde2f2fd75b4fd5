package runtime

import "testing"

func TestKnownIndex(t *testing.T) {
	for i, k := range knownKinds {
		if got := knownIndex(k); got != i {
			t.Errorf("knownIndex(%q) = %d, want %d", k, got, i)
		}
	}
	if got := knownIndex("custom.kind"); got != -1 {
		t.Errorf("knownIndex(custom) = %d, want -1", got)
	}
}
