/*
 * ONNX QuantizeLinear, per tensor, float32 -> integer codes, in plain C99.
 *
 *     y = saturate(round_half_even(x / y_scale) + y_zero_point)      (ONNX operator spec)
 *
 * x / y_scale is one IEEE float32 division; round-half-to-even is nearbyintf in the default
 * rounding mode; the zero point is added after rounding; the sum is clipped to
 * [qmin, qmax]; NaN gives qmin (as ONNX Runtime; the spec is silent). Subnormals are used
 * as they are (no flush to zero). Build without -ffast-math and without FMA contraction
 * (build.sh).
 *
 * With --ties-away the rounding is roundf, half away from zero: the deviation shipped by
 * many kernels, which `refquant diagnose` names.
 *
 * Usage: quantize_linear [--ties-away] X.npy SCALE ZERO_POINT QMIN QMAX OUT.npy
 *   X.npy    NPY 1.0 file, little-endian float32 ('<f4'), C order, any shape
 *   SCALE    the float32 scale, best as a C99 hex float (e.g. 0x1.99999ap-4)
 *   OUT.npy  written as NPY 1.0 little-endian int32 ('<i4') of X's shape
 * Exit status 0, or 2 with a one-line message on bad input.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg, const char *what) {
    fprintf(stderr, "quantize_linear: %s: %s\n", msg, what);
    return 2;
}

/* Read a 1.0 NPY float32 file: returns the data (malloc) and sets *n and shape text. */
static float *read_npy_f32(const char *path, size_t *n, char *shape, size_t shape_len) {
    FILE *f = fopen(path, "rb");
    unsigned char pre[10];
    if (!f) return NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) {
        fclose(f);
        return NULL;
    }
    size_t hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    char *hdr = calloc(hlen + 1, 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) { free(hdr); fclose(f); return NULL; }
    char *open = strchr(hdr, '(');
    char *close = open ? strchr(open, ')') : NULL;
    if (!strstr(hdr, "'descr': '<f4'") || !strstr(hdr, "'fortran_order': False") ||
        !open || !close) {
        free(hdr); fclose(f); return NULL;
    }
    size_t count = 1;
    for (char *p = open + 1; p < close;) {
        char *end;
        unsigned long long d = strtoull(p, &end, 10);
        if (end == p) { p++; continue; }
        count *= (size_t)d;
        p = end;
    }
    size_t slen = (size_t)(close - open + 1);
    if (slen >= shape_len) { free(hdr); fclose(f); return NULL; }
    memcpy(shape, open, slen);
    shape[slen] = '\0';
    free(hdr);
    float *data = malloc(count ? count * sizeof(float) : 1);
    if (!data || fread(data, sizeof(float), count, f) != count) {
        free(data); fclose(f); return NULL;
    }
    fclose(f);
    *n = count;
    return data; /* little-endian host assumed (x86-64, aarch64) */
}

static int write_npy_i32(const char *path, const int32_t *q, size_t n, const char *shape) {
    char hdr[256];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<i4', 'fortran_order': False, "
                                        "'shape': %s, }", shape);
    if (len < 0 || (size_t)len + 11 > sizeof hdr) return -1;
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64; /* header padded to a multiple of 64 bytes */
    memset(hdr + len, ' ', pad);
    len += (int)pad;
    hdr[len++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)len, f) == (size_t)len &&
             fwrite(q, sizeof(int32_t), n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* The kernel. */
static void quantize_linear(const float *x, size_t n, float scale, int32_t zp, int32_t qmin,
                            int32_t qmax, int ties_away, int32_t *y) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i] / scale;
        if (isnan(v)) { y[i] = qmin; continue; }
        float r = ties_away ? roundf(v) : nearbyintf(v);
        double t = (double)r + (double)zp; /* exact; +-inf saturates below */
        y[i] = t < qmin ? qmin : t > qmax ? qmax : (int32_t)t;
    }
}

int main(int argc, char **argv) {
    int ties_away = argc > 1 && strcmp(argv[1], "--ties-away") == 0;
    char **a = argv + 1 + ties_away;
    if (argc - 1 - ties_away != 6)
        return fail("usage", "quantize_linear [--ties-away] X.npy SCALE ZERO_POINT QMIN QMAX OUT.npy");
    char *end;
    float scale = strtof(a[1], &end);
    if (*end || !(scale > 0) || isinf(scale)) return fail("SCALE must be finite and > 0", a[1]);
    long zp = strtol(a[2], &end, 10);
    if (*end) return fail("ZERO_POINT must be an integer", a[2]);
    long qmin = strtol(a[3], &end, 10);
    if (*end) return fail("QMIN must be an integer", a[3]);
    long qmax = strtol(a[4], &end, 10);
    if (*end || qmin > qmax) return fail("QMAX must be an integer >= QMIN", a[4]);
    size_t n = 0;
    char shape[128];
    float *x = read_npy_f32(a[0], &n, shape, sizeof shape);
    if (!x) return fail("not a little-endian float32 NPY 1.0 file", a[0]);
    int32_t *y = malloc(n ? n * sizeof(int32_t) : 1);
    if (!y) return fail("out of memory", a[0]);
    quantize_linear(x, n, scale, (int32_t)zp, (int32_t)qmin, (int32_t)qmax, ties_away, y);
    int rc = write_npy_i32(a[5], y, n, shape);
    free(x);
    free(y);
    return rc == 0 ? 0 : fail("cannot write", a[5]);
}
