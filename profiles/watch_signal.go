package profiles

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// NotifyOnSignal makes the watcher reload when the process receives one of
// sigs (SIGHUP when none is given), the conventional way to make a daemon
// read its configuration again, and the way to apply changed environment
// variables, which no file event shows. The reload is like Reload's, with
// Trigger "signal SIGHUP"; signals that arrive while one is pending are
// merged. It is opt-in because it takes the signal from the process:
// while it is on, SIGHUP no longer terminates the program.
//
// stop ends it (Close does too); calling stop more than once is safe.
func (w *Watcher) NotifyOnSignal(sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGHUP}
	}
	ch := make(chan os.Signal, 1)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	signal.Notify(ch, sigs...)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case s := <-ch:
				select {
				case w.sigs <- signalName(s):
				default: // one is pending already
				}
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
			wg.Wait()
		})
	}
	w.sigMu.Lock()
	closed := w.isClosed()
	if !closed {
		w.sigStops = append(w.sigStops, stop)
	}
	w.sigMu.Unlock()
	if closed {
		stop()
	}
	return stop
}

func (w *Watcher) isClosed() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// signalName names the usual reload signals as they are written
// ("SIGHUP", not Go's "hangup").
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}
