package retry

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hook returns the go-redis hook that applies the policy. Install it with
// AddHook on a client whose own command retries are off (MaxRetries: -1),
// so that every command is tried exactly as the profile says:
//
//   - DialHook passes dials through unchanged;
//   - ProcessHook runs a single command and, while the policy allows,
//     sleeps the backoff and runs it again;
//   - ProcessPipelineHook does the same for a whole pipeline or MULTI/EXEC
//     transaction.
//
// On success the hook costs one call and, with a budget, one atomic load;
// it does not allocate. Errors are returned exactly as go-redis returned
// them for the last try (never wrapped), so err == redis.Nil still works.
//
// For a cluster client, the factory installs the ProcessHook on every
// node's client (redis.ClusterClient.OnNewNode), where each command's
// errors arrive raw from its node, and the hook itself on the
// *redis.ClusterClient for pipelines and transactions. MOVED and ASK
// redirections stay go-redis's job (cluster.max_redirects) and are not
// counted as retries.
func (p *Policy) Hook() redis.Hook { return hook{p} }

type hook struct{ p *Policy }

// DialHook passes dials through: dial attempts are go-redis's
// (DialerRetries); a command whose dial failed is retried by ProcessHook.
func (h hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook retries single commands.
func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	p := h.p
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil || err == redis.Nil {
			p.budget.Success()
			return err
		}
		return p.retryProcess(ctx, cmd, next, err)
	}
}

// retryProcess is the failure path of ProcessHook: err is the error of the
// first try of cmd.
func (p *Policy) retryProcess(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook, err error) error {
	if IsHandshake(cmd) {
		return err
	}
	var prev time.Duration
	for failure := 1; ; failure++ {
		class, ok := p.eligible(ctx, err)
		if !ok || !p.mayRepeat(cmd, err) {
			return err
		}
		d, ok := p.admit(failure, &prev, cmd.Name(), class, err)
		if !ok {
			return err
		}
		if p.sleep(ctx, d) != nil {
			return err // the caller gave up: report what the command met
		}
		// go-redis keeps a command's error in the command; the next try
		// must start clean, as a fresh command would.
		cmd.SetErr(nil)
		err = next(ctx, cmd)
		if err == nil || err == redis.Nil {
			p.budget.Success()
			return err
		}
	}
}

// ProcessPipelineHook retries pipelines and MULTI/EXEC transactions as a
// whole.
func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	p := h.p
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil {
			p.budget.Success()
			return nil
		}
		return p.retryPipeline(ctx, cmds, next, err)
	}
}

// retryPipeline is the failure path of ProcessPipelineHook: err is what the
// first run of cmds returned.
func (p *Policy) retryPipeline(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook, err error) error {
	if allHandshake(cmds) {
		return err
	}
	tx := isTx(cmds)
	name := "pipeline"
	if tx {
		name = "multi"
	}
	var prev time.Duration
	for failure := 1; ; failure++ {
		first := firstFailure(cmds, err)
		if first == nil {
			p.budget.Success() // only redis.Nil replies
			return err
		}
		class, ok := p.eligible(ctx, first)
		if !ok || !p.mayRepeatAll(cmds, first, tx) {
			return err
		}
		d, ok := p.admit(failure, &prev, name, class, first)
		if !ok {
			return err
		}
		if p.sleep(ctx, d) != nil {
			return err
		}
		for _, c := range cmds {
			c.SetErr(nil)
		}
		err = next(ctx, cmds)
		if err == nil {
			p.budget.Success()
			return nil
		}
	}
}

// isTx reports whether cmds is a MULTI/EXEC transaction as go-redis hands
// it to a pipeline hook (MULTI first, EXEC last).
func isTx(cmds []redis.Cmder) bool {
	return len(cmds) >= 2 && cmds[0].Name() == "multi" && cmds[len(cmds)-1].Name() == "exec"
}

// firstFailure returns the error of the first command of cmds that failed
// (redis.Nil is not a failure), else err unless it is nil or redis.Nil.
func firstFailure(cmds []redis.Cmder, err error) error {
	for _, c := range cmds {
		if e := c.Err(); e != nil && e != redis.Nil {
			return e
		}
	}
	if err == redis.Nil {
		return nil
	}
	return err
}

// IsHandshake reports whether cmd is one of the commands go-redis sends
// while it sets up a new connection (HELLO, AUTH, and the CLIENT
// subcommands and SELECT/READONLY it pipelines after them). These pass
// through hooks too, but they run on the one connection being set up:
// trying them again on that connection cannot help (it is the command that
// needed the connection that must be retried, on another one), and would
// hold the dial for the whole backoff.
func IsHandshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth":
		return true
	case "client":
		args := cmd.Args()
		if len(args) < 2 {
			return false
		}
		sub, _ := args[1].(string)
		switch strings.ToLower(sub) {
		case "setname", "setinfo", "maint_notifications", "tracking":
			return true
		}
	}
	return false
}

// allHandshake reports whether a pipeline holds only connection set-up
// commands (go-redis pipelines AUTH, SELECT, CLIENT SETNAME, READONLY, …
// after HELLO).
func allHandshake(cmds []redis.Cmder) bool {
	if len(cmds) == 0 {
		return false
	}
	for _, c := range cmds {
		if !IsHandshake(c) && c.Name() != "select" && c.Name() != "readonly" {
			return false
		}
	}
	return true
}
