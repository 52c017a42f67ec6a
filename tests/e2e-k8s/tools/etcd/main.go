// Command etcd is upstream's server main, built here because go.etcd.io/etcd/server/v3
// carries replace directives that `go install pkg@version` refuses.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
