//go:build !cgo

package ranks

const withoutMPI = "mct was built without MPI (CGO_ENABLED=0); rebuild with make build"
