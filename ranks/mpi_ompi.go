//go:build cgo && !nompi && !mpich

package ranks

// Open MPI (the default): its pkg-config name is ompi-c.

// #cgo pkg-config: ompi-c
import "C"
