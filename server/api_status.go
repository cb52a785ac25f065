package server

import (
	"net/http"

	"github.com/mooring-dev/mooring"
)

type connectionJSON struct {
	Connected bool `json:"connected"`
}

type workerJSON struct {
	Name          string `json:"name"`
	Hostname      string `json:"hostname"`
	PID           int    `json:"pid"`
	Created       string `json:"pulp_created"`
	LastHeartbeat string `json:"last_heartbeat"`
}

type statusJSON struct {
	Versions           []mooring.ComponentVersion `json:"versions"`
	OnlineWorkers      []workerJSON               `json:"online_workers"`
	DatabaseConnection connectionJSON             `json:"database_connection"`
	Storage            connectionJSON             `json:"storage"`
}

// getStatus is Pulp's status: versions, database and storage health,
// workers online. It takes no credentials and shows no error text.
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	if err := newQuery(r).done(); err != nil {
		return err
	}
	st := s.m.Status(r.Context())
	out := statusJSON{
		Versions:           st.Versions,
		OnlineWorkers:      make([]workerJSON, len(st.Workers)),
		DatabaseConnection: connectionJSON{st.Health.Database == nil},
		Storage:            connectionJSON{st.Health.Storage == nil},
	}
	for i, wk := range st.Workers {
		out.OnlineWorkers[i] = workerJSON{Name: wk.ID, Hostname: wk.Hostname, PID: wk.PID, Created: ts(wk.StartedAt), LastHeartbeat: ts(wk.HeartbeatAt)}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
