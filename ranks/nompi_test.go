//go:build !cgo || nompi

package ranks

import "errors"

// onMPIThread is mpi_test.go's check; without MPI no worker gets that far.
func onMPIThread([]int) error { return errors.New("built without MPI") }
