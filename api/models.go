package api

import (
	"net/http"

	"aigrid"
)

type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type list[T any] struct {
	Object string `json:"object"`
	Data   []T    `json:"data"`
}

// usableModels lists the service models that the call's key and tenant may use.
func (s *Server) usableModels(call *aigrid.Call) []model {
	models := []model{}
	for _, name := range s.cfg.Dispatcher.Models(call.Tenant) {
		if call.Key.AllowsModel(name) {
			models = append(models, model{ID: name, Object: "model", Created: call.Tenant.CreatedAt.Unix(), OwnedBy: "aigrid"})
		}
	}
	return models
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	writeJSON(w, http.StatusOK, list[model]{Object: "list", Data: s.usableModels(call)})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	name := r.PathValue("model")
	for _, m := range s.usableModels(call) {
		if m.ID == name {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, r, &aigrid.Error{Code: aigrid.ENotFound, Param: "model",
		Message: "The model " + quote(name) + " does not exist or you do not have access to it."})
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		writeError(w, r, err)
		return
	}
	req, err := decodeEmbeddingRequest(body)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !call.Key.AllowsModel(req.Model) {
		writeError(w, r, &aigrid.Error{Code: aigrid.EForbidden, Param: "model",
			Message: "This API key may not use the model " + quote(req.Model) + "."})
		return
	}
	call.Service = req.Model
	hold, err := s.reserve(r.Context(), w, call, aigrid.Estimate{PromptTokens: req.EstimateTokens(), NoOutput: true})
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp, err := s.cfg.Dispatcher.Embed(r.Context(), call, req)
	if err != nil {
		s.release(hold)
		writeError(w, r, err)
		return
	}
	u, estimated := resp.Usage, resp.Usage.PromptTokens == 0 || resp.Usage.Estimated
	if estimated {
		u = aigrid.Usage{PromptTokens: req.EstimateTokens(), TotalTokens: req.EstimateTokens()}
	}
	if err := s.settle(w, r, call, hold, u, estimated); err != nil {
		writeError(w, r, err)
		return
	}
	resp.Object, resp.Model = "list", call.Service
	for i := range resp.Data {
		resp.Data[i].Object = "embedding"
	}
	setOffer(w, call)
	writeJSON(w, http.StatusOK, resp)
	s.countUsage(w, r, call, &resp.Usage)
}
