// Command kulta-cdevents-consumer is a CDEvents consumer built on the official
// CDEvents Go SDK (github.com/cdevents/sdk-go, pinned in go.mod), used by KULTA's
// interoperability test (tests/integration/test_cdevents_interop.py).
//
// It receives CloudEvents over HTTP with the CloudEvents Go SDK's HTTP protocol
// (binary and structured content modes), parses each event's data the way a
// real consumer does (v05.NewFromJsonBytes) and validates it with the SDK's own
// schemas and constraints (api.Validate). Every event gets one JSON line on
// stdout:
//
//	{"id":"<ce id>","cdeventId":"<context.id>","type":"<ce type>","mode":"binary|structured","accepted":true,"error":""}
//
// and an HTTP answer: 200 when accepted, 400 with the reason when rejected. The
// first stdout line is {"listening":"127.0.0.1:<port>"} once the port is open.
//
// Usage: kulta-cdevents-consumer [-addr 127.0.0.1:0]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	nethttp "net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	cdeventsapi "github.com/cdevents/sdk-go/pkg/api"
	cdevents05 "github.com/cdevents/sdk-go/pkg/api/v05"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// verdict is one stdout line: what happened to one received event.
type verdict struct {
	ID        string `json:"id"`
	CDEventID string `json:"cdeventId"`
	Type      string `json:"type"`
	Mode      string `json:"mode"`
	Accepted  bool   `json:"accepted"`
	Error     string `json:"error"`
}

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

func emit(v any) {
	outMu.Lock()
	defer outMu.Unlock()
	if err := out.Encode(v); err != nil {
		log.Fatalf("cannot write to stdout: %v", err)
	}
}

func modeOf(enc binding.Encoding) string {
	switch enc {
	case binding.EncodingBinary:
		return "binary"
	case binding.EncodingStructured:
		return "structured"
	default:
		return enc.String()
	}
}

// consume parses and validates one CloudEvent message with the CDEvents SDK.
func consume(ctx context.Context, msg binding.Message) verdict {
	v := verdict{Mode: modeOf(msg.ReadEncoding())}
	ev, err := binding.ToEvent(ctx, msg)
	if err != nil {
		v.Error = fmt.Sprintf("not a CloudEvent: %v", err)
		return v
	}
	v.ID, v.Type = ev.ID(), ev.Type()
	cdevent, err := cdevents05.NewFromJsonBytes(ev.Data())
	if err != nil {
		v.Error = fmt.Sprintf("NewFromJsonBytes: %v", err)
		return v
	}
	v.CDEventID = cdevent.GetId()
	if err := cdeventsapi.Validate(cdevent); err != nil {
		v.Error = fmt.Sprintf("Validate: %v", err)
		return v
	}
	// The CloudEvent attributes must mirror the CDEvent as the SDK renders it back
	// (GetType() of a custom event is the SDK's placeholder, so read the rendering).
	rendered, err := cdeventsapi.AsJsonBytes(cdevent)
	if err != nil {
		v.Error = fmt.Sprintf("AsJsonBytes: %v", err)
		return v
	}
	var back struct {
		Context struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"context"`
	}
	if err := json.Unmarshal(rendered, &back); err != nil {
		v.Error = fmt.Sprintf("cannot read the SDK's rendering back: %v", err)
		return v
	}
	if back.Context.ID != ev.ID() || back.Context.Type != ev.Type() {
		v.Error = fmt.Sprintf("CloudEvent id/type %s/%s differ from the CDEvent's %s/%s",
			ev.ID(), ev.Type(), back.Context.ID, back.Context.Type)
		return v
	}
	v.Accepted = true
	return v
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("kulta-cdevents-consumer: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", *addr, err)
	}
	protocol, err := cehttp.New(cehttp.WithListener(listener))
	if err != nil {
		log.Fatalf("cannot create the CloudEvents HTTP protocol: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- protocol.OpenInbound(ctx) }()
	emit(map[string]string{"listening": listener.Addr().String()})

	for {
		msg, respond, err := protocol.Respond(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Fatalf("receive: %v", err)
		}
		v := consume(ctx, msg)
		emit(v)
		var result error
		if !v.Accepted {
			result = cehttp.NewResult(nethttp.StatusBadRequest, "%s", v.Error)
		}
		if err := respond(ctx, nil, result); err != nil {
			log.Printf("cannot answer event %s: %v", v.ID, err)
		}
		if err := msg.Finish(nil); err != nil {
			log.Printf("cannot finish event %s: %v", v.ID, err)
		}
	}
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, nethttp.ErrServerClosed) {
		log.Fatalf("serve: %v", err)
	}
}
