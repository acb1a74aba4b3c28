// Command apiserver runs a real kube-apiserver (k8s.io/kubernetes, in-process)
// backed by an embedded single-member etcd, for end-to-end tests only.
//
// Everything listens on 127.0.0.1. All state lives under -data-dir:
//
//	etcd/            etcd member data (survives restarts with the same -data-dir)
//	etcd.log         etcd's own log (warnings and errors)
//	etcd-ports       the etcd client and peer ports, reused on restart if free
//	pki/             CA, serving certificate and service-account key pair,
//	                 generated on first start and reused afterwards
//	tokens.csv       static token file: the admin token maps to user "admin"
//	                 in group "system:masters"
//
// Once /readyz answers 200 it prints one line starting with
// "MCSDNS-APISERVER READY" to stdout. SIGTERM or SIGINT shut down the
// apiserver gracefully (for at most -shutdown-timeout), then etcd, and the
// process exits 0. A second signal exits immediately with code 1.
//
// Usage:
//
//	apiserver -data-dir DIR -port PORT -admin-token TOKEN [-kubeconfig PATH]
//	          [-etcd-client-port N] [-etcd-peer-port N] [-v N] [-shutdown-timeout 5s]
//	          [-- extra kube-apiserver flags]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // same registrations as the stock binary
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const (
	readyPrefix          = "MCSDNS-APISERVER READY"
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	serviceClusterRange  = "10.96.0.0/16"
	loopback             = "127.0.0.1"
)

type options struct {
	dataDir    string
	port       int
	adminToken string
	kubeconfig string
	etcdClient int
	etcdPeer   int
	verbosity  int
	extraArgs  []string

	shutdownTimeout time.Duration
}

func main() {
	os.Exit(run())
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mcsdns-apiserver: "+format+"\n", args...)
}

func parseFlags() (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("mcsdns-apiserver", flag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data, certificates and keys (required)")
	fs.IntVar(&o.port, "port", 0, "secure port for the kube-apiserver on 127.0.0.1 (required)")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token for user admin in group system:masters (required)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (default DATA_DIR/admin.kubeconfig)")
	fs.IntVar(&o.etcdClient, "etcd-client-port", 0, "etcd client port (default: reuse the previous one or pick a free one)")
	fs.IntVar(&o.etcdPeer, "etcd-peer-port", 0, "etcd peer port (default: reuse the previous one or pick a free one)")
	fs.IntVar(&o.verbosity, "v", 0, "kube-apiserver log verbosity")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 3*time.Second,
		"after SIGTERM, how long to let kube-apiserver drain before stopping etcd and exiting 0")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	// Anything after "--" is passed to kube-apiserver verbatim, after our own
	// flags, so it can override them.
	o.extraArgs = fs.Args()
	switch {
	case o.dataDir == "":
		return nil, errors.New("-data-dir is required")
	case o.port <= 0 || o.port > 65535:
		return nil, errors.New("-port is required (1-65535)")
	case o.adminToken == "":
		return nil, errors.New("-admin-token is required")
	case strings.ContainsAny(o.adminToken, ",\"\n\r \t"):
		return nil, errors.New("-admin-token must not contain commas, quotes or whitespace")
	}
	abs, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, err
	}
	o.dataDir = abs
	if o.kubeconfig == "" {
		o.kubeconfig = filepath.Join(o.dataDir, "admin.kubeconfig")
	}
	return o, nil
}

func run() int {
	o, err := parseFlags()
	if err != nil {
		logf("%v", err)
		return 2
	}
	if err := os.MkdirAll(filepath.Join(o.dataDir, "pki"), 0o700); err != nil {
		logf("%v", err)
		return 1
	}
	pki, err := ensurePKI(filepath.Join(o.dataDir, "pki"))
	if err != nil {
		logf("generating certificates and keys: %v", err)
		return 1
	}
	tokenFile := filepath.Join(o.dataDir, "tokens.csv")
	if err := writeFileAtomic(tokenFile, []byte(o.adminToken+",admin,admin,\"system:masters\"\n"), 0o600); err != nil {
		logf("writing token file: %v", err)
		return 1
	}
	serverURL := "https://" + net.JoinHostPort(loopback, strconv.Itoa(o.port))
	if err := writeFileAtomic(o.kubeconfig, adminKubeconfig(serverURL, pki.caPEM, o.adminToken), 0o600); err != nil {
		logf("writing kubeconfig: %v", err)
		return 1
	}

	// NewAPIServerCommand installs the SIGTERM/SIGINT handler and carries the
	// resulting context; create it first so a signal during etcd startup is
	// also handled gracefully.
	cmd := app.NewAPIServerCommand()
	ctx := cmd.Context()

	etcd, clientURL, err := startEtcd(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			logf("stopped before etcd was ready")
			return 0
		}
		logf("starting etcd: %v", err)
		return 1
	}
	var stopping atomic.Bool
	var closeOnce sync.Once
	closeEtcd := func() {
		closeOnce.Do(func() {
			stopping.Store(true)
			etcd.Close()
			logf("etcd stopped")
		})
	}
	defer closeEtcd()
	go func() {
		if err, ok := <-etcd.Err(); ok && err != nil && !stopping.Load() {
			logf("etcd failed: %v", err)
			os.Exit(1)
		}
	}()
	// The apiserver's graceful shutdown waits (up to --request-timeout, 60s)
	// for HTTP/2 connections that still carry watches, and etcd's Close then
	// waits for the apiserver's own watch streams. Tests should not wait for
	// that: after -shutdown-timeout, give etcd a bounded close and exit.
	// Exiting during etcd's close is safe for the data: every accepted write
	// is in the WAL, which etcd replays on the next start.
	go func() {
		<-ctx.Done()
		time.Sleep(o.shutdownTimeout)
		logf("kube-apiserver still draining after %s (open watches?); stopping etcd and exiting", o.shutdownTimeout)
		done := make(chan struct{})
		go func() {
			closeEtcd()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			logf("etcd still closing after 3s; exiting anyway")
		}
		os.Exit(0)
	}()
	logf("etcd ready at %s (data %s)", clientURL, filepath.Join(o.dataDir, "etcd"))

	args := []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=" + loopback,
		"--advertise-address=" + loopback,
		"--secure-port=" + strconv.Itoa(o.port),
		"--cert-dir=" + filepath.Join(o.dataDir, "pki"),
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--client-ca-file=" + pki.caCert,
		"--token-auth-file=" + tokenFile,
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + pki.saPublic,
		"--service-account-signing-key-file=" + pki.saPrivate,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + serviceClusterRange,
		// No kubelets or controllers run here: do not try to publish the
		// loopback address as the endpoint of the "kubernetes" Service.
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=" + strconv.Itoa(o.verbosity),
	}
	args = append(args, o.extraArgs...)
	cmd.SetArgs(args)

	go announceReady(ctx, serverURL, pki.caPEM, o.adminToken, o.kubeconfig)

	logf("starting kube-apiserver on %s", serverURL)
	code := cli.Run(cmd)
	if code != 0 {
		closeEtcd()
		logf("kube-apiserver exited with code %d", code)
		return code
	}
	logf("kube-apiserver stopped")
	return 0
}

// startEtcd starts a single-member etcd on loopback ports, reusing the ports
// recorded in DATA_DIR/etcd-ports when they are still free.
func startEtcd(ctx context.Context, o *options) (*embed.Etcd, string, error) {
	portsFile := filepath.Join(o.dataDir, "etcd-ports")
	clientPort, peerPort := o.etcdClient, o.etcdPeer
	if clientPort == 0 && peerPort == 0 {
		if b, err := os.ReadFile(portsFile); err == nil {
			var c, p int
			if _, err := fmt.Sscanf(string(b), "%d %d", &c, &p); err == nil && portFree(c) && portFree(p) {
				clientPort, peerPort = c, p
			}
		}
	}
	var err error
	if clientPort == 0 {
		if clientPort, err = freePort(); err != nil {
			return nil, "", err
		}
	}
	if peerPort == 0 {
		if peerPort, err = freePort(); err != nil {
			return nil, "", err
		}
	}
	if err := writeFileAtomic(portsFile, []byte(fmt.Sprintf("%d %d\n", clientPort, peerPort)), 0o600); err != nil {
		return nil, "", err
	}

	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort(loopback, strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort(loopback, strconv.Itoa(peerPort))}
	cfg := embed.NewConfig()
	cfg.Name = "mcsdns-e2e"
	cfg.Dir = filepath.Join(o.dataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenMetricsUrls = nil
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	// etcd is chatty (and logs errors for its own orderly shutdown); keep it
	// out of the apiserver's output.
	cfg.LogOutputs = []string{filepath.Join(o.dataDir, "etcd.log")}
	// Test data only: skipping fsync makes startup and writes much faster.
	// Data still survives a process restart (it is in the page cache).
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, clientURL.String(), nil
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", errors.New("etcd was not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, "", ctx.Err()
	}
}

// announceReady polls /readyz with the admin token and prints the ready line
// once it answers 200.
func announceReady(ctx context.Context, serverURL string, caPEM []byte, token, kubeconfig string) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL+"/readyz", nil)
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Fprintf(os.Stdout, "%s url=%s kubeconfig=%s after=%s\n", readyPrefix, serverURL, kubeconfig,
				time.Since(start).Round(time.Millisecond))
			return
		}
	}
}

type pkiFiles struct {
	caCert, caKey           string
	servingCert, servingKey string
	saPrivate, saPublic     string
	caPEM                   []byte
}

// ensurePKI creates, once per data dir, a CA, a serving certificate for
// 127.0.0.1/localhost signed by it, and an RSA service-account key pair.
// Existing files are reused so kubeconfigs and issued tokens stay valid
// across restarts.
func ensurePKI(dir string) (*pkiFiles, error) {
	p := &pkiFiles{
		caCert:      filepath.Join(dir, "ca.crt"),
		caKey:       filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		saPrivate:   filepath.Join(dir, "sa.key"),
		saPublic:    filepath.Join(dir, "sa.pub"),
	}
	if !allExist(p.caCert, p.caKey, p.servingCert, p.servingKey) {
		if err := generateServingPKI(p); err != nil {
			return nil, err
		}
	}
	if !allExist(p.saPrivate, p.saPublic) {
		if err := generateServiceAccountKeys(p); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(p.caCert)
	if err != nil {
		return nil, err
	}
	p.caPEM = b
	return p, nil
}

func generateServingPKI(p *pkiFiles) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "mcsdns-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP(loopback), net.ParseIP("::1"), net.ParseIP("10.96.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(p.caKey, caKey); err != nil {
		return err
	}
	if err := writeKey(p.servingKey, srvKey); err != nil {
		return err
	}
	if err := writeFileAtomic(p.servingCert, pemBlock("CERTIFICATE", srvDER), 0o644); err != nil {
		return err
	}
	// The CA certificate is written last: its presence marks the set complete.
	return writeFileAtomic(p.caCert, pemBlock("CERTIFICATE", caDER), 0o644)
}

func generateServiceAccountKeys(p *pkiFiles) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p.saPrivate, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(p.saPublic, pemBlock("PUBLIC KEY", pub), 0o644)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pemBlock("EC PRIVATE KEY", der), 0o600)
}

func adminKubeconfig(serverURL string, caPEM []byte, token string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: mcsdns-e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: admin@mcsdns-e2e
  context:
    cluster: mcsdns-e2e
    user: admin
current-context: admin@mcsdns-e2e
`, serverURL, base64.StdEncoding.EncodeToString(caPEM), token))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

func allExist(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	if port <= 0 || port > 65535 {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
