package main

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var palette = []color.Color{
	color.RGBA{R: 0x1b, G: 0x9e, B: 0x77, A: 0xff},
	color.RGBA{R: 0xd9, G: 0x5f, B: 0x02, A: 0xff},
	color.RGBA{R: 0x75, G: 0x70, B: 0xb3, A: 0xff},
	color.RGBA{R: 0xe7, G: 0x29, B: 0x8a, A: 0xff},
	color.RGBA{R: 0x66, G: 0xa6, B: 0x1e, A: 0xff},
}

// chart draws the median ops/s of every library on every cluster workload
// as grouped bars, and writes it as a PNG.
func (r *report) chart(path string) error {
	var workloads []string
	for _, w := range r.workloads {
		if w != "codec" {
			workloads = append(workloads, w)
		}
	}
	p := plot.New()
	p.Title.Text = "committed proposals per second (median, thousands)"
	p.Y.Label.Text = "k ops/s"
	p.Y.Min = 0
	opsPerSec := metricNamed("ops/s")
	width := vg.Points(18)
	for i, lib := range r.libraries {
		values := make(plotter.Values, len(workloads))
		for j, w := range workloads {
			if s, ok := r.stat(lib, w, opsPerSec); ok {
				values[j] = s.median / 1000
			}
		}
		bars, err := plotter.NewBarChart(values, width)
		if err != nil {
			return err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(r.libraries)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(lib, bars)
	}
	p.Legend.Top = true
	p.NominalX(workloads...)
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}
