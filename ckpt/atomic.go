package ckpt

import "io"

// countingWriter passes bytes on and counts them, so a file's layout can be
// recorded while it is streamed.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
