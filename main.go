// Command gitmesh makes several plain git hosts behave as one multi-master
// cluster behind OpenSSH. See README.md; the command line lives in cli/.
package main

import "gitmesh/cli"

func main() { cli.Main() }
