package forecast

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"aigrid"
)

// HXL (the Humanitarian Exchange Language) tags a CSV's columns with a
// hashtag row under the header: the WFP food-price files of HDX read
//
//	date,admin1,admin2,market,...,commodity,unit,pricetype,currency,price,usdprice
//	#date,#adm1+name,#adm2+name,#loc+market+name,...,#item+name,#item+unit,#item+price+type,#currency,#value,#value+usd
//
// One series is the rows that share every tag except the date, the values,
// the coordinates and row flags (such as WFP's #item+price+flag).

// hxlSearchRows is how far down the hashtag row may sit: HXL allows a few
// header rows above it; WFP's files have one.
const hxlSearchRows = 5

// dateLayouts are the date forms accepted in the #date column.
var dateLayouts = []string{"2006-01-02", "2006-01", "2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006"}

// skipped is a series of a CSV file that cannot be forecast, and why: a file
// holds many series of all lengths, and the short ones should not keep the
// rest from their forecasts.
type skipped struct {
	ID     string `json:"id"`
	Points int    `json:"points"`
	Reason string `json:"reason"`
}

// parseCSV reads an HXL-tagged CSV body; the options come from the query
// (horizon, season, level, method, and value: the hashtag of the value column).
func parseCSV(body []byte, q url.Values) (request, []skipped, error) {
	opts, err := queryOptions(q)
	if err != nil {
		return request{}, nil, err
	}
	if err := opts.Validate(0); err != nil {
		return request{}, nil, err
	}
	valueTag := normalizeTag(q.Get("value"))
	if valueTag == "" {
		valueTag = "#value"
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.ReuseRecord = true
	var tags []string
	for row := 1; tags == nil; row++ {
		rec, err := r.Read()
		if err == io.EOF || (err == nil && row > hxlSearchRows) {
			return request{}, nil, aigrid.Errorf(aigrid.EInvalid, "No HXL hashtag row (like #date,#item+name,#value) in the first %d rows of the CSV.", hxlSearchRows)
		} else if err != nil {
			return request{}, nil, csvError(err)
		}
		if isHashtagRow(rec) {
			tags = make([]string, len(rec))
			for i, c := range rec {
				tags[i] = normalizeTag(c)
			}
		}
	}
	dateCol, valueCol := -1, slices.Index(tags, valueTag)
	var keyCols []int
	for i, t := range tags {
		base, attrs, _ := strings.Cut(t, "+")
		switch {
		case base == "#date" && dateCol < 0:
			dateCol = i
		case base == "" || base == "#date" || base == "#value" || base == "#geo" || slices.Contains(strings.Split(attrs, "+"), "flag"):
		default:
			keyCols = append(keyCols, i)
		}
	}
	if dateCol < 0 {
		return request{}, nil, aigrid.ParamErrorf("date", "The CSV has no #date column; its hashtags are %v.", nonEmpty(tags))
	}
	if valueCol < 0 {
		return request{}, nil, aigrid.ParamErrorf("value", "The CSV has no %s column; its hashtags are %v (choose one with ?value=).", valueTag, nonEmpty(tags))
	}

	type obs struct {
		at    time.Time
		value float64
	}
	type group struct {
		in  input
		obs []obs
	}
	groups := map[string]*group{}
	var order []string
	rows := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return request{}, nil, csvError(err)
		}
		line, _ := r.FieldPos(0)
		cell := strings.TrimSpace(rec[valueCol])
		if cell == "" {
			continue // a missing observation: the row says nothing
		}
		if rows++; rows > MaxPoints {
			return request{}, nil, aigrid.ParamErrorf("series", "Too many rows: more than %d in one request.", MaxPoints)
		}
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil {
			return request{}, nil, aigrid.ParamErrorf("value", "Line %d: the %s cell %q is not a number.", line, valueTag, cell)
		}
		at, err := parseDate(strings.TrimSpace(rec[dateCol]))
		if err != nil {
			return request{}, nil, aigrid.ParamErrorf("date", "Line %d: the #date cell %q is not a date (use YYYY-MM-DD).", line, rec[dateCol])
		}
		var id strings.Builder
		for _, c := range keyCols {
			if s := strings.TrimSpace(rec[c]); s != "" {
				if id.Len() > 0 {
					id.WriteString(" / ")
				}
				id.WriteString(s)
			}
		}
		g := groups[id.String()]
		if g == nil {
			if len(groups) == MaxSeries {
				return request{}, nil, aigrid.ParamErrorf("series", "Too many series: more than %d in one request; send a part of the file.", MaxSeries)
			}
			g = &group{in: input{id: id.String(), key: map[string]string{}}}
			for _, c := range keyCols {
				if s := strings.TrimSpace(rec[c]); s != "" {
					g.in.key[tags[c]] = s
				}
			}
			groups[id.String()] = g
			order = append(order, id.String())
		}
		g.obs = append(g.obs, obs{at, v})
	}
	if len(order) == 0 {
		return request{}, nil, aigrid.ParamErrorf("series", "The CSV has no rows with a value under its hashtag row.")
	}

	req := request{opts: opts}
	var skips []skipped
	for _, id := range order {
		g := groups[id]
		slices.SortStableFunc(g.obs, func(a, b obs) int { return a.at.Compare(b.at) })
		// Rows of one date (WFP's "actual" and "aggregate" prices, say)
		// become their mean.
		for i := 0; i < len(g.obs); {
			j, sum := i, 0.0
			for ; j < len(g.obs) && g.obs[j].at.Equal(g.obs[i].at); j++ {
				sum += g.obs[j].value
			}
			g.in.values = append(g.in.values, sum/float64(j-i))
			i = j
		}
		g.in.lastDate = g.obs[len(g.obs)-1].at.Format(time.DateOnly)
		if err := checkSeries(g.in.values, opts); err != nil {
			skips = append(skips, skipped{ID: id, Points: len(g.in.values), Reason: aigrid.ErrorMessage(err)})
			continue
		}
		req.series = append(req.series, g.in)
	}
	if len(req.series) == 0 {
		return request{}, nil, aigrid.ParamErrorf("series", "No series of the CSV can be forecast; the first: %s: %s", skips[0].ID, skips[0].Reason)
	}
	return req, skips, req.check()
}

// queryOptions reads the options of a CSV request from the URL query.
func queryOptions(q url.Values) (Options, error) {
	var opts Options
	h, err := strconv.Atoi(q.Get("horizon"))
	if err != nil {
		return opts, aigrid.ParamErrorf("horizon", "Horizon is required in the query (?horizon=6): the number of steps to forecast.")
	}
	opts.Horizon = h
	opts.Seasons = []int{1}
	if s := q.Get("season"); s != "" {
		list, err := numbers(s, strconv.Atoi)
		if err != nil || len(list) == 0 {
			return opts, aigrid.ParamErrorf("season", "Season must be a whole number or a comma-separated list of them, got %q.", s)
		}
		if len(list) == 1 {
			if list[0] < 1 {
				return opts, aigrid.ParamErrorf("season", "Season must be at least 1 (1 for no seasonal cycle), got %d.", list[0])
			}
			list = DefaultSeasons(list[0])
		}
		opts.Seasons = list
	}
	if s := q.Get("level"); s != "" {
		levels, err := numbers(s, func(f string) (float64, error) { return strconv.ParseFloat(f, 64) })
		if err != nil {
			return opts, aigrid.ParamErrorf("level", "Level must be a comma-separated list of percentages, got %q.", s)
		}
		opts.Levels = levels
	}
	opts.Method = q.Get("method")
	return opts, nil
}

func numbers[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// isHashtagRow reports whether a row is HXL's: every non-empty cell a hashtag.
func isHashtagRow(rec []string) bool {
	found := false
	for _, c := range rec {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		} else if !strings.HasPrefix(c, "#") {
			return false
		}
		found = true
	}
	return found
}

// normalizeTag lower-cases a hashtag and sorts its attributes, which HXL
// treats as unordered: "#item+type+price" is "#item+price+type".
func normalizeTag(t string) string {
	t = strings.ToLower(strings.Join(strings.Fields(t), ""))
	if t == "" {
		return ""
	}
	parts := strings.Split(t, "+")
	slices.Sort(parts[1:])
	return strings.Join(parts, "+")
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not a date")
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return aigrid.Errorf(aigrid.EInvalid, "Malformed CSV at line %d, column %d: %v.", pe.Line, pe.Column, pe.Err)
	}
	return aigrid.Errorf(aigrid.EInvalid, "Malformed CSV: %v.", err)
}

func nonEmpty(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}
