package sch

import (
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redisfactory/redisfactory/schema"
)

// Active reports whether a profile's clients ask servers for maintenance
// notifications: the mode is not disabled, the profile is not a sentinel
// profile (go-redis's failover client has none), it speaks RESP3 and it
// uses TCP.
func Active(p *schema.Profile) bool {
	if p == nil || p.SCH.Mode == schema.SCHDisabled || p.Mode == schema.Sentinel {
		return false
	}
	return p.Protocol != 2 && p.Network != "unix"
}

// MaintConfig maps a profile's sch block onto go-redis's maintenance
// notification configuration. It returns a disabled configuration when
// [Active] is false.
//
// A relaxed timeout never shortens a timeout the profile set longer:
// go-redis replaces the socket timeouts with the relaxed one during a
// maintenance, so the relaxed one is raised to the profile's read and
// write timeouts. Zero values keep go-redis's defaults (relaxed 10s,
// handoff 15s, post-handoff relaxation twice the relaxed timeout, 3 handoff
// retries, workers and queue sized from the pool).
func MaintConfig(p *schema.Profile) *maintnotifications.Config {
	if !Active(p) {
		return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	}
	relaxed := p.SCH.RelaxedTimeout
	if relaxed <= 0 {
		relaxed = maintnotifications.DefaultConfig().RelaxedTimeout
	}
	relaxed = max(relaxed, p.Timeouts.EffectiveRead(), p.Timeouts.EffectiveWrite())
	endpoint := maintnotifications.EndpointType(p.SCH.EndpointType)
	if endpoint == "" {
		endpoint = maintnotifications.EndpointTypeAuto
	}
	return &maintnotifications.Config{
		Mode:                       maintnotifications.Mode(p.SCH.Mode),
		EndpointType:               endpoint,
		RelaxedTimeout:             relaxed,
		HandoffTimeout:             p.SCH.HandoffTimeout,
		PostHandoffRelaxedDuration: p.SCH.PostHandoffRelaxedDuration,
		MaxHandoffRetries:          p.SCH.MaxHandoffRetries,
		MaxWorkers:                 p.SCH.MaxWorkers,
		HandoffQueueSize:           p.SCH.HandoffQueueSize,
	}
}
