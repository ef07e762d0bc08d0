package main

// The coordinator and its workers talk over the worker's stdin/stdout with
// one JSON object per line: commands down, events up. Only the coordinator
// starts workers, so the format is private and needs no versioning.

// Commands (coordinator -> worker).
const (
	cmdSetup     = "setup"   // dial and subscribe; answer evReady
	cmdRun       = "run"     // publish one step; answer evPubDone
	cmdStat      = "stat"    // answer evStat now
	cmdCollect   = "collect" // count the tail loss of the step; answer evCollected
	cmdChurnStep = "churn"   // run one churn step; answer evChurnDone
	cmdQuit      = "quit"    // close every connection and exit
)

// Events (worker -> coordinator).
const (
	evStat      = "stat"      // progress, once a second and on cmdStat
	evReady     = "ready"     // every connection is subscribed or failed
	evPubDone   = "pubdone"   // the step's publishes are sent
	evCollected = "collected" // the step's final counters
	evChurnDone = "churndone" // the churn step's attempts have all ended
	evFatal     = "fatal"     // the worker cannot go on
)

type command struct {
	Cmd   string    `json:"cmd"`
	Setup *setupCmd `json:"setup,omitempty"`
	Run   *runCmd   `json:"run,omitempty"`
	Ends  []uint64  `json:"ends,omitempty"` // cmdCollect: sequence ends, index publisher*channels+channel
}

// setupCmd gives a worker its share of the connections, by global index so
// that URL round-robin and source addresses come out the same whatever the
// split.
type setupCmd struct {
	Proto       string   `json:"proto"` // "v1", "socketio" or "centrifugo"
	URLs        []string `json:"urls"`
	PubURLs     []string `json:"pubUrls,omitempty"` // publishers' URLs when they differ from URLs
	Channel     string   `json:"channel"`           // fanout: everyone's channel
	OwnChannel  bool     `json:"ownChannel"`        // idle: subscriber g joins Channel+"-"+g
	SubFirst    int      `json:"subFirst"`
	SubCount    int      `json:"subCount"`
	PubFirst    int      `json:"pubFirst"`
	PubCount    int      `json:"pubCount"`
	PubTotal    int      `json:"pubTotal"`
	Rooms       int      `json:"rooms"` // rooms: subscriber g joins Channel-(g/RoomSize); 0: one channel
	RoomSize    int      `json:"roomSize"`
	CrossEvery  int      `json:"crossEvery"` // rooms: every n-th room is spread over all URLs, the others sit on one
	PerDest     int      `json:"perDest"`    // connections per destination address, for source binding
	ReadBuf     int      `json:"readBuf"`
	DialConc    int      `json:"dialConc"`
	DialTimeout int64    `json:"dialTimeoutMs"`
	AckTimeout  int64    `json:"ackTimeoutMs"`
	Reader      string   `json:"reader,omitempty"`     // readerEpoll, or a goroutine per subscriber
	Arrival     string   `json:"arrival,omitempty"`    // arrivalKernel, or the time of the read
	ReaderIdle  bool     `json:"readerIdle,omitempty"` // the poll loops' threads run under SCHED_IDLE
}

// readerEpoll: subscribers, once acknowledged, are read by one epoll loop
// per worker process instead of a goroutine each (rawread_linux.go).
const readerEpoll = "epoll"

// arrivalKernel: a delivery's latency ends at the kernel's receive
// timestamp of the read that completed its frame (SO_TIMESTAMPNS), not at
// the read: what the load tool's own reading costs on a machine it shares
// with the servers stays out of the figure. The time of the read is kept as
// a second histogram (rawread_linux.go).
const arrivalKernel = "kernel"

// readerUring is readerEpoll with each batch of ready sockets read by one
// io_uring_enter instead of a read(2) each (rawread_linux.go).
const readerUring = "uring"

type runCmd struct {
	Step    int     `json:"step"`
	Rate    float64 `json:"rate"` // per publisher, messages/s
	Size    int     `json:"size"`
	DurMs   int64   `json:"durMs"`
	StartNs int64   `json:"startNs"` // wall clock start, so all workers' publishers share one phase grid

	// churn
	Conc    int `json:"conc"`    // attempts in flight at most
	Sources int `json:"sources"` // loopback source addresses to rotate over
	Workers int `json:"workers"` // worker count, to interleave attempt numbers
}

// event carries the counters of the current step (deliveries, loss,
// histogram) and of the whole run (connections).
type event struct {
	Ev     string `json:"ev"`
	Err    string `json:"err,omitempty"`
	Worker int    `json:"worker"`

	Subs        int   `json:"subs"`
	Connected   int64 `json:"connected"`
	Acked       int64 `json:"acked"`
	DialErrs    int64 `json:"dialErrs"`
	SubErrs     int64 `json:"subErrs"`
	Disconnects int64 `json:"disconnects"`

	Received  int64     `json:"received"`
	Dups      int64     `json:"dups"`
	Reordered int64     `json:"reordered"`
	Lost      int64     `json:"lost"`
	Foreign   int64     `json:"foreign"` // deliveries the scanner could not place
	Published int64     `json:"published"`
	PubAcks   int64     `json:"pubAcks"`
	PubErrs   int64     `json:"pubErrs"`
	Hist      *histJSON `json:"hist,omitempty"`
	// --arrival kernel: latency to the read, and the frames that came
	// without a kernel timestamp (timed by the read).
	ReadHist *histJSON `json:"readHist,omitempty"`
	// Several URLs: latency of subscribers on their publisher's node, and
	// on the other nodes.
	LocalHist  *histJSON `json:"localHist,omitempty"`
	RemoteHist *histJSON `json:"remoteHist,omitempty"`
	Unstamped  int64     `json:"unstamped,omitempty"`
	Coalesced  int64     `json:"coalesced,omitempty"`

	Ends map[int][]uint64 `json:"ends,omitempty"` // evPubDone: global publisher -> sequence end per channel

	// churn step counters
	Attempts      int64 `json:"attempts,omitempty"`
	Churned       int64 `json:"churned,omitempty"` // subscribed (acked) connections
	ChurnDialErrs int64 `json:"churnDialErrs,omitempty"`
	ChurnSubErrs  int64 `json:"churnSubErrs,omitempty"`
	DoneNs        int64 `json:"doneNs,omitempty"` // evChurnDone: when the last subscribe ack arrived
}
