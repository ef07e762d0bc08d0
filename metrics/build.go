package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo says which build of meshcast is running.
type BuildInfo struct {
	Version   string // a release tag, a module version, or "devel"
	Revision  string // the VCS revision, when the build recorded it
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

// ReadBuildInfo returns the running binary's build information. version,
// if not empty, wins over the module version (a release build sets it
// with -ldflags "-X main.version=v1.2.3").
func ReadBuildInfo(version string) BuildInfo {
	bi := BuildInfo{Version: version, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi.orDevel()
	}
	if bi.Version == "" && info.Main.Version != "(devel)" {
		bi.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi.orDevel()
}

func (bi BuildInfo) orDevel() BuildInfo {
	if bi.Version == "" {
		bi.Version = "devel"
	}
	return bi
}

// String is the one-line form `meshcast version` prints.
func (bi BuildInfo) String() string {
	s := "meshcast " + bi.Version
	if bi.Revision != "" {
		s += " (" + bi.Revision
		if bi.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + bi.GoVersion
}

// NewBuildInfoCollector is meshcast_build_info: always 1, with the build
// in its labels, so dashboards can show and join on the version.
func NewBuildInfoCollector(bi BuildInfo) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshcast_build_info",
		Help: "Always 1; the labels say which build of meshcast is running.",
		ConstLabels: prometheus.Labels{
			"version":   bi.Version,
			"revision":  bi.Revision,
			"goversion": bi.GoVersion,
		},
	})
	g.Set(1)
	return g
}
