// etcd at the release Kubernetes pins (kubeadm's DefaultEtcdVersion).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
