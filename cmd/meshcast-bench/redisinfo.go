package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// redisNet is Redis's own count of the bytes it received from and sent to
// its clients (INFO stats total_net_input_bytes / total_net_output_bytes).
// With the Socket.IO Redis adapter every cross-node byte goes through
// Redis: a node publishes (input) and Redis hands the message to every
// node's subscriber connection (output), so in+out is what crosses between
// processes, the counterpart of the sum of meshcast's peer-link bytes_sent.
type redisNet struct{ In, Out int64 }

func (r redisNet) total() int64 { return r.In + r.Out }

var errRedisReply = errors.New("unexpected redis reply")

// readRedisNet asks Redis at addr (host:port) for INFO stats over a fresh
// connection; the request and its ~1 KiB reply add to the next reading,
// which is noise next to a step's traffic.
func readRedisNet(ctx context.Context, addr string) (redisNet, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return redisNet{}, fmt.Errorf("redis info: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := io.WriteString(nc, "*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n"); err != nil {
		return redisNet{}, fmt.Errorf("redis info: %w", err)
	}
	body, err := readBulk(bufio.NewReader(nc))
	if err != nil {
		return redisNet{}, fmt.Errorf("redis info: %w", err)
	}
	return parseRedisNet(body)
}

// readBulk reads one RESP bulk string ($<len>\r\n<bytes>\r\n).
func readBulk(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 || line[0] != '$' {
		return nil, fmt.Errorf("%w: %.80q", errRedisReply, line)
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("%w: bulk length %q", errRedisReply, line[1:])
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func parseRedisNet(info []byte) (redisNet, error) {
	var r redisNet
	var in, out bool
	for _, line := range bytes.Split(info, []byte("\n")) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			continue
		}
		switch string(k) {
		case "total_net_input_bytes":
			r.In, in = n, true
		case "total_net_output_bytes":
			r.Out, out = n, true
		}
	}
	if !in || !out {
		return r, fmt.Errorf("%w: no total_net_input_bytes/total_net_output_bytes", errRedisReply)
	}
	return r, nil
}
