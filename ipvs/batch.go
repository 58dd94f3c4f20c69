package ipvs

import (
	"context"
	"errors"
	"fmt"

	"lvslab/config"
)

// ApplyBatch applies the commands of a rules file (lvsadm -R) as one
// transaction, the way Replace applies a reloaded file: every command is
// checked, in order, against the configuration the ones before it leave
// first, and only if all pass are they committed, with one update of the
// kernel guard. On any refusal nothing changes and the error names the
// rule's file and line.
//
// Committing replays the commands in order on the running state (what
// commit does for one command), so it has exactly their meaning (a -D then
// -A of one service starts it afresh; -Z zeroes where it stands). If ctx is
// done before anything is changed (the client went away), nothing is
// applied and the error is ctx's cause. See ApplyAll for the locking.
func (e *Engine) ApplyBatch(ctx context.Context, rules []config.Rule) error {
	return e.applyBatch(ctx, rules)
}

func (e *Engine) applyBatch(ctx context.Context, rules []config.Rule) error {
	if len(rules) == 0 {
		return nil
	}
	cmds := make([]config.Command, len(rules))
	for i, r := range rules {
		cmds[i] = r.Command
	}
	err := e.applyAll(ctx, cmds)
	var be *BatchError
	if errors.As(err, &be) {
		r := rules[be.Index]
		return fmt.Errorf("%s:%d: %w", r.File, r.Line, be.Err)
	}
	return err
}
