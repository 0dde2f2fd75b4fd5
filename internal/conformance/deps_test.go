package conformance

// go-redis's Ginkgo suite, which the harness compiles from the module cache,
// imports these modules. Importing them here keeps them in go.mod and go.sum,
// so `go mod download` fetches everything the harness needs and the spec
// binary builds offline with the exact versions recorded here.
import (
	_ "github.com/bsm/ginkgo/v2"
	_ "github.com/bsm/gomega"
)
