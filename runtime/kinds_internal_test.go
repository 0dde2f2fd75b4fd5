package runtime

import "testing"

// TestKnownIndexMatchesKnownKinds: the switch on the publish path and the
// table of known kinds agree, so every declared kind has a fast counter.
func TestKnownIndexMatchesKnownKinds(t *testing.T) {
	for i, k := range knownKinds {
		if got := knownIndex(k); got != i {
			t.Errorf("knownIndex(%q) = %d, want %d", k, got, i)
		}
	}
	if knownIndex("custom.kind") != -1 {
		t.Error("an undeclared kind must not have a fast counter")
	}
}
