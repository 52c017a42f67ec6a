// Command registrar registers a CSI driver with the kubelet's plugin watcher: the job of
// node-driver-registrar, whose module the Go module proxy refuses on this project's machines
// (403 for every version of github.com/kubernetes-csi/node-driver-registrar). It takes the
// same flags as node-driver-registrar (--csi-address, --kubelet-registration-path,
// --plugin-registration-path) and does what it does: ask the driver for its name over CSI
// (GetPluginInfo), serve pluginregistration.v1 on <plugin-registration-path>/<name>-reg.sock,
// and log the kubelet's NotifyRegistrationStatus. Test scaffolding for tests/e2e-k8s only.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type server struct {
	registerapi.UnimplementedRegistrationServer
	name     string
	endpoint string
}

func (s *server) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              s.name,
		Endpoint:          s.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (s *server) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.PluginRegistered {
		log.Printf("kubelet registered %s", s.name)
	} else {
		log.Printf("kubelet refused %s: %s", s.name, st.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// driverName asks the driver for its name, retrying until it answers (it may start later).
func driverName(addr string) (string, error) {
	conn, err := grpc.NewClient("unix://"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			return resp.GetName(), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("GetPluginInfo on %s: %w", addr, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func main() {
	csiAddress := flag.String("csi-address", "/run/csi/socket", "the driver's CSI socket, as this process sees it")
	kubeletPath := flag.String("kubelet-registration-path", "", "the driver's CSI socket, as the kubelet sees it")
	pluginPath := flag.String("plugin-registration-path", "/registration", "the kubelet's plugins_registry directory")
	flag.Parse()
	if *kubeletPath == "" {
		log.Fatal("--kubelet-registration-path is required")
	}
	name, err := driverName(*csiAddress)
	if err != nil {
		log.Fatal(err)
	}
	sock := filepath.Join(*pluginPath, name+"-reg.sock")
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		log.Fatalf("removing stale %s: %v", sock, err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatalf("listening on %s: %v", sock, err)
	}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &server{name: name, endpoint: *kubeletPath})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		srv.Stop()
		os.Remove(sock)
		os.Exit(0)
	}()
	log.Printf("serving registration of %s (%s) on %s", name, *kubeletPath, sock)
	if err := srv.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
