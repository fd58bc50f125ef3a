/* Test driver for kws_nn.c: reads whitespace-separated integers on stdin, one case at a time
 * ("<kernel-name> <scalars...> <arrays...>", layouts below), runs the kernel and prints its
 * outputs, one line per case. Used by tests/test_nn_kernels.py to compare the C kernels with
 * the Python kernels of export/simulator.py. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "kws_nn.h"

#define MAXN 16384

static int32_t a[MAXN], b[MAXN], c[MAXN], d[MAXN], o[MAXN];
static int16_t h16[MAXN], w16[MAXN];
static int8_t w8[MAXN];
static int32_t p32[MAXN], q32[MAXN], r32[MAXN], s32[MAXN], t32[MAXN], u32[MAXN], v32[MAXN], acc32[MAXN];

static long long rd(void)
{
    long long v;
    if (scanf("%lld", &v) != 1) { fprintf(stderr, "short input\n"); exit(2); }
    return v;
}
static void rd16(int16_t *x, long long n) { for (long long i = 0; i < n; i++) { x[i] = (int16_t)rd(); } }
static void rd8(int8_t *x, long long n) { for (long long i = 0; i < n; i++) { x[i] = (int8_t)rd(); } }
static void rd32(int32_t *x, long long n) { for (long long i = 0; i < n; i++) { x[i] = (int32_t)rd(); } }
static void pr16(const int16_t *x, long long n) { for (long long i = 0; i < n; i++) { printf("%d ", (int)x[i]); } }
static void pr32(const int32_t *x, long long n) { for (long long i = 0; i < n; i++) { printf("%ld ", (long)x[i]); } }

int main(void)
{
    char name[64];
    while (scanf("%63s", name) == 1) {
        if (strcmp(name, "fully_connected") == 0 || strcmp(name, "fully_connected_w16") == 0) {
            /* rows cols x_zp out_zp qmin qmax single x[cols] W[rows*cols] bias mult shift [rows] */
            const int w16flag = strcmp(name, "fully_connected_w16") == 0;
            const int32_t rows = (int32_t)rd(), cols = (int32_t)rd(), xz = (int32_t)rd(),
                          oz = (int32_t)rd(), lo = (int32_t)rd(), hi = (int32_t)rd(), sr = (int32_t)rd();
            rd32(a, cols);
            if (w16flag) { rd16(w16, (long long)rows * cols); } else { rd8(w8, (long long)rows * cols); }
            rd32(p32, rows); rd32(q32, rows); rd32(r32, rows);
            if (w16flag) { fully_connected_w16(a, xz, w16, p32, q32, r32, sr, oz, lo, hi, rows, cols, o); }
            else { fully_connected(a, xz, w8, p32, q32, r32, sr, oz, lo, hi, rows, cols, o); }
            pr32(o, rows);
        } else if (strcmp(name, "conv1d_depthwise_step") == 0 || strcmp(name, "conv1d_depthwise_step_w16") == 0) {
            /* E K x_zp out_zp qmin qmax history[(K-1)E] x[E] W[E*K] bias mult shift [E] */
            const int w16flag = strcmp(name, "conv1d_depthwise_step_w16") == 0;
            const int32_t E = (int32_t)rd(), K = (int32_t)rd(), xz = (int32_t)rd(),
                          oz = (int32_t)rd(), lo = (int32_t)rd(), hi = (int32_t)rd();
            rd32(b, (long long)(K - 1) * E); rd32(a, E);
            if (w16flag) { rd16(w16, (long long)E * K); } else { rd8(w8, (long long)E * K); }
            rd32(p32, E); rd32(q32, E); rd32(r32, E);
            if (w16flag) { conv1d_depthwise_step_w16(b, a, xz, w16, p32, q32, r32, oz, lo, hi, E, K, o); }
            else { conv1d_depthwise_step(b, a, xz, w8, p32, q32, r32, oz, lo, hi, E, K, o); }
            pr32(o, E); pr32(b, (long long)(K - 1) * E);
        } else if (strcmp(name, "layer_norm") == 0) {
            /* D x_zp eps_q zf mult shift out_zp qmin qmax x[D] gamma[D] beta[D] */
            const int32_t D = (int32_t)rd(), xz = (int32_t)rd();
            const int64_t eps = (int64_t)rd();
            const int32_t zf = (int32_t)rd(), m = (int32_t)rd(), sh = (int32_t)rd(),
                          oz = (int32_t)rd(), lo = (int32_t)rd(), hi = (int32_t)rd();
            rd32(a, D); rd16(w16, D); rd32(p32, D);
            layer_norm(a, xz, eps, zf, w16, p32, m, sh, oz, lo, hi, D, o);
            pr32(o, D);
        } else if (strcmp(name, "lut_s8") == 0) {
            const int32_t n = (int32_t)rd();
            rd32(a, n); rd16(w16, 256);
            lut_s8(a, w16, n, o);
            pr32(o, n);
        } else if (strcmp(name, "lut_s16") == 0) {
            const int32_t n = (int32_t)rd();
            rd32(a, n); rd32(p32, 513);
            lut_s16(a, p32, n, o);
            pr32(o, n);
        } else if (strcmp(name, "elementwise_add") == 0) {
            /* n a_zp b_zp ls am as bm bs om os oz qmin qmax a[n] b[n] */
            int32_t v[13];
            for (int i = 0; i < 13; i++) { v[i] = (int32_t)rd(); }
            rd32(a, v[0]); rd32(b, v[0]);
            elementwise_add(a, b, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
                            v[11], v[12], v[0], o);
            pr32(o, v[0]);
        } else if (strcmp(name, "residual_add") == 0) {
            const int32_t n = (int32_t)rd();
            rd32(a, n); rd32(b, n);
            residual_add(a, b, n, o);
            pr32(o, n);
        } else if (strcmp(name, "elementwise_mul") == 0) {
            /* n a_zp b_zp m s oz qmin qmax a[n] b[n] */
            int32_t v[8];
            for (int i = 0; i < 8; i++) { v[i] = (int32_t)rd(); }
            rd32(a, v[0]); rd32(b, v[0]);
            elementwise_mul(a, b, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[0], o);
            pr32(o, v[0]);
        } else if (strcmp(name, "sa_ssm_step") == 0) {
            /* E N u_zp p_shift fb F d_shift y_min y_max
             * h[E*N] u[E] delta[E] Bg[N] C[N] k_a[E*N] table[2^fb]
             * du_m[E] du_s[E] h_read_shift[E] d_q[E] y_m[E] y_s[E] */
            kws_ssm_params_t p;
            p.d_inner = (int32_t)rd(); p.d_state = (int32_t)rd(); p.u_zp = (int32_t)rd();
            p.p_shift = (int32_t)rd(); p.exp_frac_bits = (int32_t)rd(); p.dA_frac_bits = (int32_t)rd();
            p.d_shift = (int32_t)rd(); p.y_min = (int32_t)rd(); p.y_max = (int32_t)rd();
            const long long E = p.d_inner, EN = (long long)p.d_inner * p.d_state;
            rd16(h16, EN); rd32(a, E); rd32(b, E); rd32(c, p.d_state); rd32(d, p.d_state);
            rd32(p32, EN);
            static int16_t table[1 << 12];
            rd16(table, 1LL << p.exp_frac_bits);
            rd32(q32, E); rd32(r32, E); rd32(s32, E); rd32(t32, E); rd32(u32, E); rd32(v32, E);
            p.k_a = p32; p.exp_table = table; p.du_multiplier = q32; p.du_shift = r32;
            p.h_read_shift = s32; p.d_q = t32; p.y_multiplier = u32; p.y_shift = v32;
            sa_ssm_step(h16, a, b, c, d, &p, o);
            pr32(o, E); pr16(h16, EN);
        } else if (strcmp(name, "mean_pool") == 0) {
            /* n x_zp T m s oz qmin qmax x[T*n]: T x accumulate, then finalize */
            int32_t v[8];
            for (int i = 0; i < 8; i++) { v[i] = (int32_t)rd(); }
            for (int32_t i = 0; i < v[0]; i++) { acc32[i] = 0; }
            for (int32_t t = 0; t < v[2]; t++) {
                rd32(a, v[0]);
                mean_pool_accumulate(acc32, a, v[1], v[0]);
            }
            mean_pool_finalize(acc32, v[3], v[4], v[5], v[6], v[7], v[0], o);
            pr32(o, v[0]);
        } else if (strcmp(name, "argmax_s32") == 0) {
            /* n x[n]: the label */
            const int32_t n = (int32_t)rd();
            rd32(a, n);
            printf("%ld ", (long)argmax_s32(a, n));
        } else {
            fprintf(stderr, "unknown kernel %s\n", name);
            return 2;
        }
        printf("\n");
    }
    return 0;
}
