package runtime

import (
	"context"
	"slices"
	"sync"
)

// tracker keeps track of named units of work (goroutines, jobs) so that
// Close can wait for them and name those that did not finish in time.
type tracker struct {
	mu     sync.Mutex
	closed bool
	next   uint64
	tasks  map[uint64]*task
}

type task struct {
	name string
	done chan struct{}
}

// start registers a unit of work called name. It returns the task, whose
// done channel is closed once finish has been called, or ok == false if the
// tracker is closed.
func (t *tracker) start(name string) (tk *task, finish func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, false
	}
	if t.tasks == nil {
		t.tasks = make(map[uint64]*task)
	}
	t.next++
	id := t.next
	tk = &task{name: name, done: make(chan struct{})}
	t.tasks[id] = tk
	return tk, func() {
		t.mu.Lock()
		delete(t.tasks, id)
		t.mu.Unlock()
		close(tk.done)
	}, true
}

// close refuses further work and returns the work still running, in the
// order it was started.
func (t *tracker) close() []*task {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	ids := make([]uint64, 0, len(t.tasks))
	for id := range t.tasks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*task, len(ids))
	for i, id := range ids {
		out[i] = t.tasks[id]
	}
	return out
}

// wait waits for tasks to finish or ctx to end, and returns the names of the
// tasks that have not finished.
func wait(ctx context.Context, tasks []*task) (pending []string) {
	for _, tk := range tasks {
		select {
		case <-tk.done:
		case <-ctx.Done():
		}
	}
	for _, tk := range tasks {
		select {
		case <-tk.done:
		default:
			pending = append(pending, tk.name)
		}
	}
	return pending
}
