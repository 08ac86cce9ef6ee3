/* es_runs.h - masks as runs of foreground per row, the form grasp geometry and RLE read.
 *
 * A decode writes box-cropped bitmaps (es_post.h's es_bitmaps); es_bitmap_runs turns
 * them into runs once (one pass, 8 bytes at a time), and everything after reads the
 * runs, O(runs) instead of O(pixels): a 400x300 blob is ~300 runs against 120 kB.
 */
#ifndef ES_RUNS_H
#define ES_RUNS_H

#include "es_post.h"

/* n masks as runs. Mask i covers spans[i] in the image; its row y (0-based inside the span) is
 * global row first_row[i] + y, whose runs are runs[2 * k], runs[2 * k + 1] (start, end exclusive;
 * columns inside the span, ascending, disjoint, non-empty) for k in [row_start[row], row_start[row + 1]). */
typedef struct {
    const es_span *spans;     /* (n,) */
    const int64_t *first_row; /* (n,) */
    int64_t n;
    const int64_t *row_start; /* (nrows + 1,) */
    int64_t nrows;
    const int32_t *runs;      /* (nruns, 2) */
    int64_t nruns;
} es_runs;

/* ES_OK when every mask's rows lie in the table and every run is sorted, non-empty and inside its span. */
int es_check_runs(const es_runs *r);

/* Runs of bitmaps b: first_row (n,) and row_start (sum of heights + 1) are written in full; runs
 * (runs_cap pairs) takes *nruns pairs. ES_ERR_CAPACITY when runs_cap is too small (*nruns then says
 * how many were found before it ran out; call again with more). */
int es_bitmap_runs(const es_bitmaps *b, int64_t *first_row, int64_t *row_start, int64_t rows_cap, int32_t *runs,
                   int64_t runs_cap, int64_t *nruns);

/* Per mask, into out[6 * i ...]: area (m00), centroid x, y (continuous image pixels), major axis
 * angle of the closing direction wrapped to (-pi/2, pi/2], solidity (area / convex hull area with
 * the half-pixel rim), and the hull area itself. Moments as OpenCV's cv2.moments(binaryImage=True);
 * a mask with area 0 gets zeros. work: es_shapes_work_size(tallest span) entries; cap: rows of out. */
int es_runs_shapes(const es_runs *r, int32_t *work, int64_t work_cap, double *out, int64_t cap);

/* Extents of each mask in its grasp frame. params[5 * i ...]: centroid x, y, closing cos, sin,
 * half band (<= 0 or NaN: no band). With s = rel . closing, t = rel . major (rel = pixel centre -
 * centroid, major = (-sin, cos)), out[4 * i ...] = min t, max t over all pixels, and min s, max s
 * over the pixels with |t| <= half band (all pixels when there is no band or none lies in it). */
int es_runs_extents(const es_runs *r, const double *params, double *out, int64_t cap);

/* The two finger quads of m grasps' sweeps, as edgeseg/grasp/reference.py's clearance builds them
 * (same float64 expressions): params[7 * k ...] = centre x, y, closing cos, sin, object extent, jaw
 * opening (pixels), pixels per gripper unit. Per finger f, windows[8 * k + 4 * f ...] = (x0, y0, w, h):
 * the quad's pixel bounds widened by one and clipped to the ih x iw image (w = h = 0 when it or the
 * reference's window over both quads is empty), and pts[16 * k + 8 * f ...] its 4 corners (x, y) in
 * that window's pixel-centre coordinates with 4 fractional bits (cv2.fillConvexPoly(..., shift=4)),
 * rounded half to even in the reference's window and moved by whole pixels. ES_ERR_ARG for a
 * non-finite or huge corner. */
int es_sweep_quads(const double *params, int64_t m, double finger_width, double finger_thickness, int32_t ih,
                   int32_t iw, int32_t *windows, int32_t *pts);

/* The fingers' sweeps of m grasps, each finger rasterized into its own window of the image: sweep k's
 * finger f (0, 1) has window windows[8 * k + 4 * f ...] = (x0, y0, w, h) (x0, y0 >= 0), whose h rows of w
 * bytes (nonzero = swept) are bytes[offsets[2 * k + f] ...]; a pixel both fingers cover counts once. The
 * masks that may reach sweep k are which[bounds[k] .. bounds[k + 1]) (indices into a run table). */
typedef struct {
    const uint8_t *bytes;
    int64_t nbytes;
    const int32_t *windows;  /* (m, 2, 4) */
    const int64_t *offsets;  /* (m, 2) */
    const int64_t *bounds;   /* (m + 1,) */
    int64_t m;
    const int64_t *which;    /* (nwhich,) */
    int64_t nwhich;
} es_sweeps;

/* Work bytes es_runs_sweeps needs for s. */
int64_t es_sweeps_work_size(const es_sweeps *s);

/* Per sweep k: out[2 * k] = swept pixels, out[2 * k + 1] = swept pixels that any of its masks in r covers
 * (r's masks placed at their spans in the same image). Reads the windows' rows and the masks' runs that
 * meet their swept intervals, nothing else. */
int es_runs_sweeps(const es_runs *r, const es_sweeps *s, uint8_t *work, int64_t work_size, int64_t *out);

/* int32-sized work bytes es_rle_runs needs for the masks of r (the widest strip's changes). */
size_t es_rle_runs_workspace_size(const es_runs *r);

/* COCO RLE strings of masks first..n-1 of r in an ih x iw image (pycocotools' compressed counts),
 * back to back in out[0, cap): ends[i] = end offset of mask i; on ES_ERR_CAPACITY *done says how many
 * were written, call again from there with more room (es_masks_rle's protocol). work:
 * es_rle_runs_workspace_size bytes. */
int es_rle_runs(const es_runs *r, int ih, int iw, int64_t first, char *out, int64_t cap, int64_t *ends,
                int64_t *done, uint8_t *work, size_t work_size);

#endif
