package forecast

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"aigrid"
)

// Limits on one request.
const (
	maxBody = 8 << 20
	// MaxSeries and MaxPoints bound a request's work: the automatic choice
	// on hourly data (two cycles, 30 candidates, three folds) costs about 40
	// µs of one core per point, so the largest request takes some 10 seconds.
	MaxSeries = 1000
	MaxPoints = 250_000
	// MaxForecastPoints bounds the response: series × horizon.
	MaxForecastPoints = 200_000
	maxLevels         = 10
)

// request is a parsed request: the series and what to forecast.
type request struct {
	series []input
	opts   Options
}

// input is one series of a request.
type input struct {
	id       string
	key      map[string]string // CSV only: the key columns' values by hashtag
	lastDate string            // CSV only
	values   []float64
}

// jsonRequest is the JSON body. Series and Season each take two shapes.
type jsonRequest struct {
	Series  json.RawMessage `json:"series"`
	Horizon *int            `json:"horizon"`
	Season  json.RawMessage `json:"season"`
	Level   []float64       `json:"level"`
	Method  string          `json:"method"`
}

type jsonSeries struct {
	ID     json.RawMessage `json:"id"`
	Values []*float64      `json:"values"`
}

// parseJSON reads {"series": [numbers] or [{"id","values"}...], "horizon",
// "season": m or [m, longer...], "level": [...], "method"}.
func parseJSON(body []byte) (request, error) {
	var jr jsonRequest
	if err := decodeStrict(body, &jr); err != nil {
		return request{}, err
	}
	if jr.Horizon == nil {
		return request{}, aigrid.ParamErrorf("horizon", "Horizon is required: the number of steps to forecast.")
	}
	seasons, err := parseSeasonJSON(jr.Season)
	if err != nil {
		return request{}, err
	}
	req := request{opts: Options{Horizon: *jr.Horizon, Seasons: seasons, Levels: jr.Level, Method: jr.Method}}
	if req.series, err = parseSeriesJSON(jr.Series); err != nil {
		return request{}, err
	}
	return req, req.check()
}

func parseSeasonJSON(raw json.RawMessage) ([]int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return []int{1}, nil
	}
	if raw[0] == '[' {
		var list []int
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, aigrid.ParamErrorf("season", "Season must be a whole number or a list of whole numbers.")
		} else if len(list) == 0 {
			return nil, aigrid.ParamErrorf("season", "Season is an empty list; give at least the main period (1 for none).")
		}
		return list, nil
	}
	var m int
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, aigrid.ParamErrorf("season", "Season must be a whole number or a list of whole numbers.")
	}
	if m < 1 {
		return nil, aigrid.ParamErrorf("season", "Season must be at least 1 (1 for no seasonal cycle), got %d.", m)
	}
	return DefaultSeasons(m), nil
}

func parseSeriesJSON(raw json.RawMessage) ([]input, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, aigrid.ParamErrorf("series", "Series is required: a list of numbers, or a list of {\"id\", \"values\"} objects.")
	}
	if raw[0] != '[' {
		return nil, aigrid.ParamErrorf("series", "Series must be a list of numbers, or a list of {\"id\", \"values\"} objects.")
	}
	if first := bytes.TrimLeft(raw[1:], " \t\r\n"); len(first) > 0 && first[0] == '{' {
		var list []jsonSeries
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, aigrid.ParamErrorf("series", "Series must be a list of {\"id\": string, \"values\": [numbers]} objects: %v.", plainJSONError(err))
		}
		out := make([]input, len(list))
		for i, s := range list {
			param := fmt.Sprintf("series[%d].values", i)
			id, err := seriesID(s.ID, i)
			if err != nil {
				return nil, err
			}
			if out[i].values, err = finite(s.Values, param); err != nil {
				return nil, err
			}
			out[i].id = id
		}
		return out, nil
	}
	var values []*float64
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, aigrid.ParamErrorf("series", "Series must be a list of numbers, or a list of {\"id\", \"values\"} objects: %v.", plainJSONError(err))
	}
	v, err := finite(values, "series")
	if err != nil {
		return nil, err
	}
	return []input{{id: "0", values: v}}, nil
}

// seriesID reads an id given as a string or a number; a missing id is the
// series' index.
func seriesID(raw json.RawMessage, i int) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return fmt.Sprint(i), nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, nil
		}
	default:
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil {
			return n.String(), nil
		}
	}
	return "", aigrid.ParamErrorf(fmt.Sprintf("series[%d].id", i), "series[%d].id must be a string or a number.", i)
}

// finite turns JSON values into numbers, rejecting nulls (JSON has no NaN,
// and a null would otherwise read as zero).
func finite(values []*float64, param string) ([]float64, error) {
	out := make([]float64, len(values))
	for i, v := range values {
		if v == nil {
			return nil, aigrid.ParamErrorf(param, "%s[%d] is null: a series must not have gaps; fill or drop missing values.", param, i)
		}
		out[i] = *v
	}
	return out, nil
}

// check applies the request-wide limits and each series' own checks, so that
// a bad series fails the request before any work is done.
func (req request) check() error {
	switch {
	case len(req.series) == 0:
		return aigrid.ParamErrorf("series", "Series is empty: send at least one series.")
	case len(req.series) > MaxSeries:
		return aigrid.ParamErrorf("series", "Too many series: %d, at most %d in one request.", len(req.series), MaxSeries)
	case len(req.opts.Levels) > maxLevels:
		return aigrid.ParamErrorf("level", "Too many levels: %d, at most %d.", len(req.opts.Levels), maxLevels)
	case req.opts.Horizon > 0 && len(req.series)*req.opts.Horizon > MaxForecastPoints:
		return aigrid.ParamErrorf("horizon", "%d series × horizon %d is more than %d forecast points in one request.", len(req.series), req.opts.Horizon, MaxForecastPoints)
	}
	if err := req.opts.Validate(0); err != nil {
		return err
	}
	total := 0
	for _, s := range req.series {
		total += len(s.values)
	}
	if total > MaxPoints {
		return aigrid.ParamErrorf("series", "Too many points: %d, at most %d in one request.", total, MaxPoints)
	}
	for i, s := range req.series {
		err := checkSeries(s.values, req.opts)
		var e *aigrid.Error
		if errors.As(err, &e) && (len(req.series) > 1 || s.id != "0") {
			return &aigrid.Error{Code: e.Code, Param: e.Param, Message: fmt.Sprintf("Series %d (%q): %s", i, s.id, e.Message)}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// decodeStrict decodes one JSON object, rejecting unknown fields so that a
// misspelt option is not silently ignored.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return aigrid.Errorf(aigrid.EInvalid, "The request body is empty: send a JSON object (or CSV with Content-Type: text/csv).")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, tokErr := dec.Token(); tokErr != io.EOF {
			err = errors.New("extra data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field == "":
		return aigrid.Errorf(aigrid.EInvalid, "The body must be a JSON object, not %s.", typ.Value)
	case errors.As(err, &typ):
		return aigrid.ParamErrorf(typ.Field, "%s has the wrong type: got %s.", typ.Field, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return aigrid.ParamErrorf(field, "Unknown field %q: the fields are series, horizon, season, level and method.", field)
	}
	return aigrid.Errorf(aigrid.EInvalid, "The body is not valid JSON: %s.", plainJSONError(err))
}

// plainJSONError is a JSON error without Go's "json: " prefix.
func plainJSONError(err error) string {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends too early"
	case errors.As(err, &typ):
		// Say what was found where, in JSON's words rather than Go's.
		want := map[reflect.Kind]string{reflect.Float64: "a number", reflect.Pointer: "a number", reflect.Slice: "a list",
			reflect.String: "a string", reflect.Struct: "an object", reflect.Interface: "a string or a number"}[typ.Type.Kind()]
		if want == "" {
			want = "another type"
		}
		if typ.Field != "" {
			return fmt.Sprintf("%s is %s where %s goes", typ.Field, typ.Value, want)
		}
		return fmt.Sprintf("found %s where %s goes", typ.Value, want)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
