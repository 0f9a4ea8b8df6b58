package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/raftly/raft/raftkv/e2e"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// etcdServerArg, as kvbench's first argument, makes it run one embedded
// etcd server (etcdServerMain) instead of the benchmark.
const etcdServerArg = "__etcd-server"

// etcdServerMain runs one member of an etcd cluster with the etcd command's
// defaults (fsync on) until SIGTERM or SIGINT. It logs warnings and errors
// only, to stderr.
func etcdServerMain(args []string) error {
	fs := flag.NewFlagSet(etcdServerArg, flag.ContinueOnError)
	name := fs.String("name", "", "member name")
	dir := fs.String("data", "", "data directory")
	peer := fs.String("peer", "", "peer URL (listen and advertise)")
	client := fs.String("client", "", "client URL (listen and advertise)")
	initial := fs.String("cluster", "", "initial cluster, name=peerURL,...")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		return err
	}
	cu, err := url.Parse(*client)
	if err != nil {
		return err
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.InitialCluster = *initial
	cfg.InitialClusterToken = "kvbench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	// The etcd command sets this default itself; embed.NewConfig leaves it
	// at zero, which logs every request as slow.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-sig:
		return nil
	}
	select {
	case <-sig:
		return nil
	case err := <-e.Err():
		return err
	}
}

type etcdCluster struct {
	procs     []*proc
	endpoints []string
	lead      int
	conns     []*clientv3.Client // conns[i]: node i's clientv3, shared by its benchmark clients; nil until asked for
}

// startEtcd starts three etcd members, each this binary run again with
// etcdServerArg.
func startEtcd(ctx context.Context, dir string) (cluster, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ports, err := e2e.FreePorts(2 * nodes)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{conns: make([]*clientv3.Client, nodes)}
	var initial []string
	for i := range nodes {
		initial = append(initial, fmt.Sprintf("n%d=http://127.0.0.1:%d", i+1, ports[i]))
		c.endpoints = append(c.endpoints, fmt.Sprintf("http://127.0.0.1:%d", ports[nodes+i]))
	}
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		p, err := startProc("etcd "+name, filepath.Join(dir, "etcd-"+name+".log"), exe,
			etcdServerArg,
			"-name", name,
			"-data", filepath.Join(dir, "etcd-"+name),
			"-peer", fmt.Sprintf("http://127.0.0.1:%d", ports[i]),
			"-client", c.endpoints[i],
			"-cluster", strings.Join(initial, ","))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
	}

	probes := make([]*clientv3.Client, nodes)
	defer func() {
		for _, p := range probes {
			if p != nil {
				p.Close()
			}
		}
	}()
	for i := range probes {
		if probes[i], err = newEtcdClient(c.endpoints[i]); err != nil {
			c.stop()
			return nil, err
		}
	}
	c.lead, err = waitReady(ctx, c.procs, func(ctx context.Context) (int, error) {
		lead := -1
		var leadID uint64
		for i, p := range probes {
			st, err := p.Status(ctx, c.endpoints[i])
			if err != nil {
				return -1, err
			}
			switch {
			case st.Leader == 0:
				return -1, fmt.Errorf("%s knows no leader", c.endpoints[i])
			case i > 0 && st.Leader != leadID:
				return -1, fmt.Errorf("leaders differ: %x and %x", leadID, st.Leader)
			}
			leadID = st.Leader
			if st.Header.MemberId == st.Leader {
				lead = i
			}
		}
		if lead < 0 {
			return -1, errors.New("no endpoint is the leader")
		}
		return lead, nil
	})
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return c, nil
}

func (c *etcdCluster) leader() int { return c.lead }

func (c *etcdCluster) stop() {
	for _, cli := range c.conns {
		if cli != nil {
			cli.Close()
		}
	}
	killProcs(c.procs)
}

// client returns a client that shares node i's clientv3 (one gRPC
// connection, which multiplexes concurrent requests) with the other
// benchmark clients on node i. That is how etcd's client is meant to be
// used, and it did better than a clientv3 per benchmark client at 64
// clients in each of three paired runs (see doc.go).
func (c *etcdCluster) client(i int) (kvClient, error) {
	if c.conns[i] == nil {
		cli, err := newEtcdClient(c.endpoints[i])
		if err != nil {
			return nil, err
		}
		c.conns[i] = cli
	}
	return etcdClient{c.conns[i]}, nil
}

// newEtcdClient returns a client of the one endpoint ep, quiet.
func newEtcdClient(ep string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{ep},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

type etcdClient struct{ c *clientv3.Client }

func (e etcdClient) put(ctx context.Context, key string, value []byte) error {
	_, err := e.c.Put(ctx, key, string(value))
	return err
}

// get is a default Get, which is linearizable (not WithSerializable).
func (e etcdClient) get(ctx context.Context, key string) error {
	resp, err := e.c.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("get %s: absent", key)
	}
	return nil
}

// close does nothing: the clientv3 is the cluster's, closed by stop.
func (e etcdClient) close() {}
