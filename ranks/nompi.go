//go:build !cgo || nompi

package ranks

import "errors"

// World returns an error in a build without MPI: under an MPI launcher it says
// how to get a build that has it; otherwise it points to RunLocal.
func World() (Comm, error) {
	if Launched() {
		return nil, errors.New(withoutMPI)
	}
	return nil, errNotLaunched
}

// CUDAAware reports whether the MPI library can move GPU memory; a build
// without MPI has none.
func CUDAAware() (bool, string) { return false, withoutMPI }

// LibraryVersion is MPI_Get_library_version's text; empty without MPI.
func LibraryVersion() string { return "" }

func mpiNode() (rank, size int, ok bool) { return 0, 0, false }
