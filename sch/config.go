package sch

import (
	"github.com/redisfactory/redisfactory/schema"
)

// Active reports whether a profile's clients ask servers for maintenance
// notifications: the mode is not disabled, the profile speaks RESP3 and it
// uses TCP. Standalone, Sentinel (the master's connections) and cluster
// profiles all can.
func Active(p *schema.Profile) bool {
	if p == nil || p.SCH.Mode == schema.SCHDisabled {
		return false
	}
	return p.Protocol != 2 && p.Network != "unix"
}
