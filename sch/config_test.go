package sch_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/sch"
	"github.com/redisfactory/redisfactory/schema"
)

func profile(mode schema.Mode, sm schema.SCHMode) *schema.Profile {
	return &schema.Profile{
		Mode: mode, Protocol: 3, Addr: "127.0.0.1:6379",
		Timeouts: schema.Timeouts{Connect: time.Second, Socket: 5 * time.Second},
		SCH:      schema.SCH{Mode: sm, EndpointType: "auto", RelaxedTimeout: 10 * time.Second, HandoffTimeout: 15 * time.Second},
	}
}

func TestMaintConfigModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p *schema.Profile)
		want   maintnotifications.Mode
	}{
		{"auto standalone", func(*schema.Profile) {}, maintnotifications.ModeAuto},
		{"enabled standalone", func(p *schema.Profile) { p.SCH.Mode = schema.SCHEnabled }, maintnotifications.ModeEnabled},
		{"disabled", func(p *schema.Profile) { p.SCH.Mode = schema.SCHDisabled }, maintnotifications.ModeDisabled},
		{"auto cluster", func(p *schema.Profile) { p.Mode = schema.Cluster }, maintnotifications.ModeAuto},
		{"auto sentinel is quietly off", func(p *schema.Profile) { p.Mode = schema.Sentinel }, maintnotifications.ModeDisabled},
		{"auto RESP2 is off", func(p *schema.Profile) { p.Protocol = 2 }, maintnotifications.ModeDisabled},
		{"auto unix socket is off", func(p *schema.Profile) { p.Network = "unix" }, maintnotifications.ModeDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := profile(schema.Standalone, schema.SCHAuto)
			tc.mutate(p)
			got := sch.MaintConfig(p)
			require.Equal(t, tc.want, got.Mode)
			require.Equal(t, tc.want != maintnotifications.ModeDisabled, sch.Active(p))
		})
	}
}

func TestMaintConfigRelaxedNeverShortens(t *testing.T) {
	p := profile(schema.Standalone, schema.SCHAuto)
	p.SCH.RelaxedTimeout = 2 * time.Second

	p.Timeouts = schema.Timeouts{Socket: time.Second}
	require.Equal(t, 2*time.Second, sch.MaintConfig(p).RelaxedTimeout, "relaxed longer than socket: kept")

	p.Timeouts = schema.Timeouts{Socket: 30 * time.Second}
	require.Equal(t, 30*time.Second, sch.MaintConfig(p).RelaxedTimeout, "socket longer: relaxed raised to it")

	p.Timeouts = schema.Timeouts{Socket: time.Second, Write: 45 * time.Second}
	require.Equal(t, 45*time.Second, sch.MaintConfig(p).RelaxedTimeout, "write longer: relaxed raised to it")

	p.SCH.RelaxedTimeout = 0
	p.Timeouts = schema.Timeouts{Socket: time.Second}
	require.Equal(t, 10*time.Second, sch.MaintConfig(p).RelaxedTimeout, "0: go-redis's default 10s")

	cfg := sch.MaintConfig(p)
	cfg.HandoffTimeout = 15 * time.Second
	cfg.MaxHandoffRetries = 3
	cfg.CircuitBreakerFailureThreshold, cfg.CircuitBreakerMaxRequests = 5, 3
	require.NoError(t, cfg.Validate())
}

func TestMaintConfigCopiesKeys(t *testing.T) {
	p := profile(schema.Standalone, schema.SCHEnabled)
	p.SCH = schema.SCH{Mode: schema.SCHEnabled, EndpointType: "internal-fqdn", RelaxedTimeout: 20 * time.Second,
		HandoffTimeout: 7 * time.Second, PostHandoffRelaxedDuration: 9 * time.Second, MaxHandoffRetries: 5,
		MaxWorkers: 4, HandoffQueueSize: 300}
	got := sch.MaintConfig(p)
	require.Equal(t, &maintnotifications.Config{
		Mode: maintnotifications.ModeEnabled, EndpointType: maintnotifications.EndpointTypeInternalFQDN,
		RelaxedTimeout: 20 * time.Second, HandoffTimeout: 7 * time.Second, PostHandoffRelaxedDuration: 9 * time.Second,
		MaxHandoffRetries: 5, MaxWorkers: 4, HandoffQueueSize: 300,
	}, got)
}
