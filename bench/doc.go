// Package bench measures the cost of gitmesh serve against plain git shell
// on the same repository, in the same run. Run it with `make bench`.
package bench
