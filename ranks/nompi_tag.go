//go:build cgo && nompi

package ranks

const withoutMPI = "mct was built without MPI (-tags nompi); rebuild with make build"
