package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// runGRPC calls grpc.health.v1.Health/Check on PodIP:port over plaintext,
// as the kubelet does (the grpc probe has no host and no TLS).
func runGRPC(ctx context.Context, a *corev1.GRPCAction, timeout time.Duration, t Target) (Result, string, error) {
	if t.PodIP == "" {
		return Unknown, "", errors.New("grpc probe: no pod IP")
	}
	if a.Port <= 0 || a.Port > 65535 {
		return Unknown, "", fmt.Errorf("grpc probe: invalid port number: %d", a.Port)
	}
	service := ""
	if a.Service != nil {
		service = *a.Service
	}
	addr := net.JoinHostPort(t.PodIP, strconv.Itoa(int(a.Port)))
	d := dialer()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent("kube-probe/"+KubeVersion),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}),
	)
	if err != nil {
		return Unknown, "", fmt.Errorf("grpc probe %s: %w", addr, err)
	}
	defer conn.Close()

	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: service})
	if ctx.Err() != nil {
		return Unknown, "", fmt.Errorf("grpc probe %s: %w", addr, ctx.Err())
	}
	if err != nil {
		if st, ok := status.FromError(err); ok {
			switch st.Code() {
			case codes.Unimplemented:
				return Failure, "this server does not implement the grpc health protocol (grpc.health.v1.Health): " + st.Message(), nil
			case codes.DeadlineExceeded:
				return Failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), nil
			case codes.Unavailable:
				return Failure, fmt.Sprintf("error: failed to connect service at %q: %v", addr, err), nil
			}
		}
		return Failure, fmt.Sprintf("error: health rpc probe failed: %v", err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), nil
	}
	return Success, "service healthy", nil
}
