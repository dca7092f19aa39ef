package forecast

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"aigrid"
)

// Name is the package's name: the grid serves it under /v1/packages/forecast/.
const Name = "forecast"

// Package is the forecast package as the grid serves it: an aigrid.Package.
// It keeps no state; every request carries its series.
type Package struct {
	mux *http.ServeMux
}

var _ aigrid.Package = (*Package)(nil)

// New returns the forecast package.
func New() *Package {
	p := &Package{mux: http.NewServeMux()}
	p.mux.HandleFunc("POST /{$}", p.forecast)
	p.mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, r, aigrid.Errorf(codeMethodNotAllowed, "The forecast package takes POST, not %s.", r.Method))
	})
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "There is no endpoint %s %s in the forecast package; POST / forecasts.", r.Method, r.URL.Path))
	})
	return p
}

// ServeHTTP serves a request whose path has lost the package's prefix.
func (p *Package) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Info describes the package for GET /v1/packages.
func (p *Package) Info() aigrid.PackageInfo {
	return aigrid.PackageInfo{
		Name: Name,
		Description: "Forecasts of demand, prices and yields: point forecasts and prediction intervals for each series, " +
			"the method (seasonal naive, SES, Holt, damped trend, Holt-Winters, Theta, combinations) chosen per series by validation; JSON or HXL-tagged CSV in.",
		Unit:      "point: one per value forecast (series × horizon)",
		Endpoints: []string{"POST /"},
	}
}

// response is the body of a forecast.
type response struct {
	Object    string           `json:"object"`
	Horizon   int              `json:"horizon"`
	Season    []int            `json:"season"`
	Forecasts []seriesForecast `json:"forecasts"`
	Skipped   []skipped        `json:"skipped,omitempty"`
}

type seriesForecast struct {
	ID       string            `json:"id"`
	Key      map[string]string `json:"key,omitempty"`
	LastDate string            `json:"last_date,omitempty"`
	Points   int               `json:"points"`
	Method   string            `json:"method"`
	Seasonal bool              `json:"seasonal"`
	Point    []float64         `json:"point"`
	// Intervals is never null, so that clients can range over it.
	Intervals []interval `json:"intervals"`
}

type interval struct {
	Level float64   `json:"level"`
	Lower []float64 `json:"lower"`
	Upper []float64 `json:"upper"`
}

func (p *Package) forecast(w http.ResponseWriter, r *http.Request) {
	if err := p.serve(w, r); err != nil {
		writeError(w, r, err)
	}
}

func (p *Package) serve(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return aigrid.Errorf(aigrid.ETooLarge, "The request body is larger than %d MiB.", maxBody>>20)
		}
		return aigrid.Errorf(aigrid.EInvalid, "The request body could not be read: %v.", err)
	}
	var req request
	var skips []skipped
	switch ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct {
	case "application/json", "":
		req, err = parseJSON(body)
	case "text/csv":
		req, skips, err = parseCSV(body, r.URL.Query())
	default:
		err = aigrid.Errorf(aigrid.EUnsupportedType, "Content-Type %q is not supported: send application/json or text/csv.", ct)
	}
	if err != nil {
		return err
	}
	resp := response{Object: "forecast", Horizon: req.opts.Horizon, Season: req.opts.seasons(), Forecasts: make([]seriesForecast, 0, len(req.series)), Skipped: skips}
	for _, s := range req.series {
		if err := r.Context().Err(); err != nil {
			return err // the client has gone; nothing to write
		}
		res, err := Forecast(s.values, req.opts)
		if err != nil {
			return err
		}
		f := seriesForecast{ID: s.id, Key: s.key, LastDate: s.lastDate, Points: len(s.values), Method: res.Method, Seasonal: res.Seasonal, Point: round(res.Point), Intervals: []interval{}}
		for _, iv := range res.Intervals {
			f.Intervals = append(f.Intervals, interval{iv.Level, round(iv.Lower), round(iv.Upper)})
		}
		resp.Forecasts = append(resp.Forecasts, f)
	}
	if call := aigrid.CallFrom(r.Context()); call != nil {
		call.Units += int64(len(resp.Forecasts) * req.opts.Horizon)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// significantDigits is the precision of the forecasts in a response: far
// finer than any forecast's error, and short to read and send.
const significantDigits = 7

func round(values []float64) []float64 {
	for i, v := range values {
		values[i], _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', significantDigits, 64), 64)
	}
	return values
}
