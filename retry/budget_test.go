package retry_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

func TestBudgetDisabled(t *testing.T) {
	var b *retry.Budget = retry.NewBudget(schema.Budget{})
	require.Nil(t, b)
	assert.True(t, b.Failure())
	assert.True(t, b.Allowed())
	b.Success()
	assert.Zero(t, b.Tokens())
	assert.Zero(t, b.MaxTokens())
}

func TestBudgetArithmetic(t *testing.T) {
	// The example of gRPC's retry throttling design (A6): max 10, ratio 0.1.
	type step struct {
		op      string // "fail" or "ok"
		allowed bool   // for "fail"
		tokens  float64
	}
	tests := []struct {
		name   string
		budget schema.Budget
		steps  []step
	}{
		{"failures drain to the threshold", schema.Budget{MaxTokens: 10, TokenRatio: 0.1}, []step{
			{"fail", true, 9}, {"fail", true, 8}, {"fail", true, 7}, {"fail", true, 6},
			{"fail", false, 5}, // 5 is not more than 10/2
			{"fail", false, 4},
			{"ok", false, 4.1}, {"ok", false, 4.2},
		}},
		{"never below zero", schema.Budget{MaxTokens: 2, TokenRatio: 0.5}, []step{
			{"fail", false, 1}, {"fail", false, 0}, {"fail", false, 0}, {"ok", false, 0.5},
			{"ok", false, 1}, {"ok", false, 1.5}, {"fail", false, 0.5},
		}},
		{"never above max", schema.Budget{MaxTokens: 3, TokenRatio: 0.7}, []step{
			{"ok", false, 3}, {"fail", true, 2}, {"ok", false, 2.7}, {"ok", false, 3}, {"ok", false, 3},
		}},
		{"recovers above half", schema.Budget{MaxTokens: 4, TokenRatio: 1}, []step{
			{"fail", true, 3}, {"fail", false, 2}, {"ok", false, 3}, {"ok", false, 4}, {"fail", true, 3},
		}},
		{"ratio 0 never refills", schema.Budget{MaxTokens: 4}, []step{
			{"fail", true, 3}, {"ok", false, 3},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := retry.NewBudget(tt.budget)
			require.NotNil(t, b)
			assert.Equal(t, tt.budget.MaxTokens, b.Tokens(), "starts full")
			for i, s := range tt.steps {
				if s.op == "fail" {
					assert.Equal(t, s.allowed, b.Failure(), "step %d", i)
				} else {
					b.Success()
				}
				assert.InDelta(t, s.tokens, b.Tokens(), 1e-9, "step %d", i)
				assert.Equal(t, 2*b.Tokens() > b.MaxTokens(), b.Allowed(), "step %d", i)
			}
		})
	}
}

// TestBudgetConcurrent runs failures and successes from many goroutines
// (under -race) and checks that no update is lost.
func TestBudgetConcurrent(t *testing.T) {
	b := retry.NewBudget(schema.Budget{MaxTokens: 1000, TokenRatio: 0.5})
	const goroutines, each = 16, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each / 20 { // 50 failures: 800 tokens taken in all
				b.Failure()
			}
		}()
	}
	wg.Wait()
	assert.InDelta(t, 200, b.Tokens(), 1e-9)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 { // 800 successes: 400 tokens back
				b.Success()
			}
			_ = b.Allowed()
		}()
	}
	wg.Wait()
	assert.InDelta(t, 600, b.Tokens(), 1e-9)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%2 == 0 {
					b.Success()
				} else {
					b.Failure()
				}
			}
		}()
	}
	wg.Wait()
	assert.GreaterOrEqual(t, b.Tokens(), 0.0)
	assert.LessOrEqual(t, b.Tokens(), 1000.0)
}
