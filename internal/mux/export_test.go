package mux

import "net"

// PartialCap returns the capacity of the buffer a virtual connection keeps
// for a command not complete yet.
func PartialCap(c net.Conn) int { return cap(c.(*vconn).partial) }

// Holding reports whether a writer of d holds its batch for the reader's
// next read.
func Holding(d *Dialer) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := range d.all {
		s.mu.Lock()
		h := s.holding
		s.mu.Unlock()
		if h {
			return true
		}
	}
	return false
}

// HoldAt is holdAt, for the tests.
const HoldAt = holdAt

// ReadySockets returns how many sockets Do may use now.
func ReadySockets(d *Dialer) int {
	if p := d.ready.Load(); p != nil {
		return len(*p)
	}
	return 0
}
