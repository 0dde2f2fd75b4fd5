package sch_test

import (
	"testing"
	"time"

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

func TestActive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p *schema.Profile)
		want   bool
	}{
		{"auto standalone", func(*schema.Profile) {}, true},
		{"enabled standalone", func(p *schema.Profile) { p.SCH.Mode = schema.SCHEnabled }, true},
		{"disabled", func(p *schema.Profile) { p.SCH.Mode = schema.SCHDisabled }, false},
		{"auto cluster", func(p *schema.Profile) { p.Mode = schema.Cluster }, true},
		{"auto sentinel", func(p *schema.Profile) { p.Mode = schema.Sentinel }, true},
		{"enabled sentinel", func(p *schema.Profile) { p.Mode, p.SCH.Mode = schema.Sentinel, schema.SCHEnabled }, true},
		{"auto RESP2 is off", func(p *schema.Profile) { p.Protocol = 2 }, false},
		{"auto unix socket is off", func(p *schema.Profile) { p.Network = "unix" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := profile(schema.Standalone, schema.SCHAuto)
			tc.mutate(p)
			require.Equal(t, tc.want, sch.Active(p))
			require.Equal(t, tc.want, sch.NewEngine("p", p, nil) != nil)
		})
	}
}
