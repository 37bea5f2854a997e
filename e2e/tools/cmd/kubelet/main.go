// kubelet, built from the pinned k8s.io/kubernetes module: the e2e cluster's real node, which
// runs task containers with containerd and runc.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
