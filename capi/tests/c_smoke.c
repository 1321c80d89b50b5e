/* Smoke test of the C interface: SGD and Adam steps on values derived by hand (the Rust tests
 * `sgd_by_hand` and `adam_by_hand` in src/tests.rs check the same inputs and bits), torch's
 * defaults, and the error codes; then the storage formats (the _ex functions): the same Adam by
 * hand in bf16, and five cases whose inputs and expected bits the Rust API computed
 * (c_smoke_expected.h, kept current by the capi test `c_smoke_expected_values_are_current`):
 * torchao AdamW8bit, AdamW with stochastic rounding on the second half of a tensor, Kahan bf16,
 * f16 with float8 state, Adagrad's initial value in 4-bit state. Exits 0 when every check
 * passes. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "fused_optim.h"
#include "c_smoke_expected.h"

static int failures = 0;
static int checks = 0;

static void expect_floats(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        checks++;
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            printf("FAIL %s[%zu]: %.9g, expected %.9g\n", what, i, got[i], want[i]);
            failures++;
        }
    }
}

static void expect_status(const char *what, int got, int want) {
    checks++;
    if (got != want) {
        printf("FAIL %s: status %d (%s), expected %d (%s)\n", what, got, fo_status_message(got), want,
               fo_status_message(want));
        failures++;
    }
}

/* lr = 0.25, momentum = 0.5: b = g1, p = p0 - 0.25 b; then b = 0.5 b + g2, p -= 0.25 b.
   Every value is a short binary fraction, so every operation is exact. */
static void sgd_by_hand(void) {
    FoSgd opt = fo_sgd_default();
    opt.lr = 0.25;
    opt.momentum = 0.5;
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    float b[4] = {9.0f, 9.0f, 9.0f, 9.0f}; /* step 1 ignores the buffer, as torch does */
    const float g1[4] = {0.5f, 1.0f, -2.0f, 0.0f};
    const float g2[4] = {1.0f, -1.0f, 0.5f, 4.0f};
    checks++;
    if (fo_sgd_state_len(&opt, 4) != 4) { printf("FAIL sgd state_len\n"); failures++; }
    expect_status("sgd step 1", fo_sgd_step(&opt, 1, p, g1, 4, b, 4), FO_OK);
    const float p1[4] = {0.875f, -2.25f, 1.0f, 3.0f};
    expect_floats("sgd p after step 1", p, p1, 4);
    expect_status("sgd step 2", fo_sgd_step(&opt, 2, p, g2, 4, b, 4), FO_OK);
    const float b2[4] = {1.25f, -0.5f, -0.5f, 4.0f};
    const float p2[4] = {0.5625f, -2.125f, 1.125f, 2.0f};
    expect_floats("sgd momentum after step 2", b, b2, 4);
    expect_floats("sgd p after step 2", p, p2, 4);
}

/* lr = 0.75, betas = (0.5, 0), eps = 1: v = g*g, sqrt(1 - 0^t) = 1, so the denominator is
   |g| + 1; lr / (1 - 0.5^t) is 1.5 then 1; m = g - 0.5 (g - m). All exact. */
static void adam_by_hand(void) {
    FoAdam opt = fo_adam_default();
    opt.lr = 0.75;
    opt.beta1 = 0.5;
    opt.beta2 = 0.0;
    opt.eps = 1.0;
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    float s[8] = {0};
    const float g1[4] = {1.0f, -3.0f, 0.0f, 7.0f};
    const float g2[4] = {-1.0f, 1.0f, 3.0f, 7.0f};
    checks++;
    if (fo_adam_state_len(&opt, 4) != 8) { printf("FAIL adam state_len\n"); failures++; }
    expect_status("adam step 1", fo_adam_step(&opt, 1, p, g1, 4, s, 8), FO_OK);
    const float p1[4] = {0.625f, -1.4375f, 0.5f, 2.34375f};
    const float s1[8] = {0.5f, -1.5f, 0.0f, 3.5f, 1.0f, 9.0f, 0.0f, 49.0f};
    expect_floats("adam p after step 1", p, p1, 4);
    expect_floats("adam state after step 1", s, s1, 8);
    expect_status("adam step 2", fo_adam_step(&opt, 2, p, g2, 4, s, 8), FO_OK);
    const float p2[4] = {0.75f, -1.3125f, 0.125f, 1.6875f};
    const float s2[8] = {-0.25f, -0.25f, 1.5f, 5.25f, 1.0f, 1.0f, 9.0f, 49.0f};
    expect_floats("adam p after step 2", p, p2, 4);
    expect_floats("adam state after step 2", s, s2, 8);
}

static void defaults_and_errors(void) {
    FoAdam a = fo_adam_default();
    checks++;
    if (a.lr != 1e-3 || a.beta1 != 0.9 || a.beta2 != 0.999 || a.eps != 1e-8 || a.weight_decay != 0.0 ||
        a.amsgrad || a.maximize || a.decoupled_weight_decay) {
        printf("FAIL adam defaults\n");
        failures++;
    }
    FoAdam w = fo_adamw_default();
    checks++;
    if (w.weight_decay != 1e-2 || !w.decoupled_weight_decay) { printf("FAIL adamw defaults\n"); failures++; }
    checks++;
    if (fo_nadam_scalars_default().mu_product != 1.0f) { printf("FAIL nadam scalars\n"); failures++; }

    float p[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    const float g[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    float s[8] = {0};
    expect_status("NULL opt", fo_adam_step(NULL, 1, p, g, 4, s, 8), FO_ERR_POINTER);
    expect_status("NULL params", fo_adam_step(&a, 1, NULL, g, 4, s, 8), FO_ERR_POINTER);
    expect_status("step 0", fo_adam_step(&a, 0, p, g, 4, s, 8), FO_ERR_INVALID_STEP);
    expect_status("short state", fo_adam_step(&a, 1, p, g, 4, s, 7), FO_ERR_LENGTH);
    expect_status("overlap", fo_adam_step(&a, 1, p, p, 4, s, 8), FO_ERR_OVERLAP);
    FoAdam bad = a;
    bad.lr = -1.0;
    expect_status("negative lr", fo_adam_step(&bad, 1, p, g, 4, s, 8), FO_ERR_INVALID_HYPERPARAMETER);
    bad = a;
    bad.beta2 = NAN;
    expect_status("NaN beta2", fo_adam_validate(&bad), FO_ERR_INVALID_HYPERPARAMETER);
    FoSgd nesterov = fo_sgd_default();
    nesterov.nesterov = 1;
    expect_status("nesterov without momentum", fo_sgd_validate(&nesterov), FO_ERR_INVALID_COMBINATION);
    const float ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    const float zeros[8] = {0};
    expect_floats("params untouched after errors", p, ones, 4);
    expect_floats("state untouched after errors", s, zeros, 8);
    expect_status("empty tensor, NULL pointers", fo_adam_step(&a, 1, NULL, NULL, 0, NULL, 0), FO_OK);
}

/* Every other optimizer: one step from torch's defaults moves parameters against the gradient. */
static void others_run(void) {
    float g[5] = {0.5f, -0.25f, 1.0f, -2.0f, 0.125f};
    float state[20];
#define RUN(X, T)                                                                        \
    do {                                                                                 \
        T o = fo_##X##_default();                                                        \
        float p[5] = {0};                                                                \
        size_t len = fo_##X##_state_len(&o, 5);                                          \
        expect_status(#X " init_state", fo_##X##_init_state(&o, state, len), FO_OK);     \
        expect_status(#X " step", fo_##X##_step(&o, 1, p, g, 5, state, len), FO_OK);     \
        for (int i = 0; i < 5; i++) {                                                    \
            checks++;                                                                    \
            if (!(p[i] * g[i] < 0.0f)) {                                                 \
                printf("FAIL %s: p[%d] = %g does not oppose g = %g\n", #X, i, p[i], g[i]); \
                failures++;                                                              \
            }                                                                            \
        }                                                                                \
    } while (0)
    RUN(adagrad, FoAdagrad);
    RUN(adadelta, FoAdadelta);
    RUN(rmsprop, FoRmsprop);
    RUN(adamax, FoAdamax);
    RUN(radam, FoRadam);
    RUN(lion, FoLion);
#undef RUN
    FoNadam n = fo_nadam_default();
    FoNadamScalars before = fo_nadam_scalars_default(), after = {0};
    float p[5] = {0};
    expect_status("nadam step", fo_nadam_step(&n, 1, &before, &after, p, g, 5, state, fo_nadam_state_len(&n, 5)),
                  FO_OK);
    checks++;
    if (!(after.mu_product > 0.0f && after.mu_product < 1.0f)) { printf("FAIL nadam mu_product\n"); failures++; }
}

/* Element by element (each element one check), as bytes: floats as their bits. */
static void expect_bits(const char *what, const void *got, const void *want, size_t n, size_t size) {
    const unsigned char *g = (const unsigned char *)got, *w = (const unsigned char *)want;
    int reported = 0;
    for (size_t i = 0; i < n; i++) {
        checks++;
        if (memcmp(g + i * size, w + i * size, size) != 0) {
            failures++;
            if (reported++ < 3) printf("FAIL %s: element %zu differs\n", what, i);
        }
    }
}

/* The bf16 bits of a float that bf16 holds exactly (its top 16 bits). */
static uint16_t bf(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return (uint16_t)(b >> 16);
}

/* adam_by_hand again with bf16 parameters, gradients and state: every value there is a short
   binary fraction that bf16 holds exactly, so the bits are the same values in bf16. */
static void adam_by_hand_bf16(void) {
    FoAdam opt = fo_adam_default();
    opt.lr = 0.75;
    opt.beta1 = 0.5;
    opt.beta2 = 0.0;
    opt.eps = 1.0;
    const float p0[4] = {1.0f, -2.0f, 0.5f, 3.0f}, g1[4] = {1.0f, -3.0f, 0.0f, 7.0f},
                g2[4] = {-1.0f, 1.0f, 3.0f, 7.0f};
    const float p2[4] = {0.75f, -1.3125f, 0.125f, 1.6875f};
    const float s2[8] = {-0.25f, -0.25f, 1.5f, 5.25f, 1.0f, 1.0f, 9.0f, 49.0f};
    uint16_t p[4], g[4], s[8] = {0}, want_p[4], want_s[8];
    for (int i = 0; i < 4; i++) { p[i] = bf(p0[i]); g[i] = bf(g1[i]); want_p[i] = bf(p2[i]); }
    for (int i = 0; i < 8; i++) want_s[i] = bf(s2[i]);
    FoStateLayout l;
    expect_status("bf16 layout", fo_state_layout(FO_STATE_BF16, fo_adam_state_len(&opt, 1), 4, &l), FO_OK);
    checks++;
    if (l.values != 8 || l.codes != 0 || l.scales != 0 || l.block != 1) { printf("FAIL bf16 layout\n"); failures++; }
    FoPiece piece;
    memset(&piece, 0, sizeof piece);
    piece.params = p;
    piece.grads = g;
    piece.n = 4;
    piece.param_format = FO_PARAM_BF16;
    piece.grad_format = FO_GRAD_BF16;
    piece.state.values = s;
    piece.state.values_len = l.values;
    piece.state.format = FO_STATE_BF16;
    expect_status("adam bf16 step 1", fo_adam_step_ex(&opt, 1, &piece), FO_OK);
    for (int i = 0; i < 4; i++) g[i] = bf(g2[i]);
    expect_status("adam bf16 step 2", fo_adam_step_ex(&opt, 2, &piece), FO_OK);
    expect_bits("adam bf16 p after step 2", p, want_p, 4, 2);
    expect_bits("adam bf16 state after step 2", s, want_s, 8, 2);
}

static void torchao_adamw8bit(void) {
    enum { N = TORCHAO_ADAMW8BIT_N };
    static float p[N];
    static uint16_t g[N];
    static uint8_t codes[2 * N];
    static float scales[4];
    FoTorchaoAdam opt = fo_torchao_adamw8bit_default();
    opt.lr = 1e-2;
    memcpy(p, torchao_adamw8bit_in_p32, sizeof p);
    memcpy(g, torchao_adamw8bit_in_g16, sizeof g);
    FoStateLayout l;
    expect_status("int8 layout", fo_state_layout(FO_STATE_INT8, fo_torchao_adam_state_len(&opt, 1), N, &l), FO_OK);
    checks++;
    if (l.values != 0 || l.codes != 2 * N || l.scales != 4 || l.block != 256) { printf("FAIL int8 layout\n"); failures++; }
    checks++;
    if (fo_torchao_adam_state_format_for(&opt, N, FO_STATE_F32) != FO_STATE_F32 ||
        fo_torchao_adam_state_format_for(&opt, 4096, FO_STATE_F32) != FO_STATE_INT8) {
        printf("FAIL torchao state format choice\n");
        failures++;
    }
    FoPiece piece;
    memset(&piece, 0, sizeof piece);
    piece.params = p;
    piece.grads = g;
    piece.n = N;
    piece.param_format = FO_PARAM_F32;
    piece.grad_format = FO_GRAD_BF16;
    piece.state.codes = codes;
    piece.state.codes_len = l.codes;
    piece.state.scales = scales;
    piece.state.scales_len = l.scales;
    piece.state.format = FO_STATE_INT8;
    for (uint64_t t = 1; t <= 2; t++) expect_status("torchao adamw8bit step", fo_torchao_adam_step_ex(&opt, t, &piece), FO_OK);
    expect_bits("torchao adamw8bit params", p, torchao_adamw8bit_out_p32, N, 4);
    expect_bits("torchao adamw8bit codes", codes, torchao_adamw8bit_out_codes, 2 * N, 1);
    expect_bits("torchao adamw8bit scales", scales, torchao_adamw8bit_out_scales, 4, 4);
}

static void adamw_sr_int8_offset256(void) {
    enum { N = ADAMW_SR_INT8_OFFSET256_N };
    static uint16_t p[N], before_p[N];
    static float g[N];
    static uint8_t codes[2 * N], before_codes[2 * N];
    static float scales[2];
    FoAdam opt = fo_adamw_default();
    opt.lr = 1e-2;
    memcpy(p, adamw_sr_int8_offset256_in_p16, sizeof p);
    memcpy(g, adamw_sr_int8_offset256_in_g32, sizeof g);
    FoPiece piece;
    memset(&piece, 0, sizeof piece);
    piece.seed = ADAMW_SR_INT8_OFFSET256_SEED;
    piece.params = p;
    piece.grads = g;
    piece.n = N;
    piece.offset = ADAMW_SR_INT8_OFFSET256_OFFSET;
    piece.param_format = FO_PARAM_BF16_SR;
    piece.grad_format = FO_GRAD_F32;
    piece.state.codes = codes;
    piece.state.codes_len = 2 * N;
    piece.state.scales = scales;
    piece.state.scales_len = 2;
    piece.state.format = FO_STATE_INT8;
    /* Errors first: nothing may be written. */
    memcpy(before_p, p, sizeof p);
    memcpy(before_codes, codes, sizeof codes);
    FoPiece bad = piece;
    bad.offset = 128;
    expect_status("offset inside a block", fo_adam_step_ex(&opt, 1, &bad), FO_ERR_MISALIGNED);
    bad = piece;
    bad.param_format = 9;
    expect_status("unknown param format", fo_adam_step_ex(&opt, 1, &bad), FO_ERR_FORMAT);
    bad = piece;
    bad.state.scales_len = 3;
    expect_status("scales length", fo_adam_step_ex(&opt, 1, &bad), FO_ERR_LENGTH);
    bad = piece;
    bad.state.codes = (uint8_t *)p;
    bad.state.codes_len = 2 * N;
    expect_status("codes overlap params", fo_adam_step_ex(&opt, 1, &bad), FO_ERR_OVERLAP);
    bad = piece;
    bad.params = NULL;
    expect_status("NULL params", fo_adam_step_ex(&opt, 1, &bad), FO_ERR_POINTER);
    expect_bits("params untouched after format errors", p, before_p, N, 2);
    expect_bits("codes untouched after format errors", codes, before_codes, 2 * N, 1);
    for (uint64_t t = 1; t <= 2; t++) expect_status("adamw sr step", fo_adam_step_ex(&opt, t, &piece), FO_OK);
    expect_bits("adamw sr params", p, adamw_sr_int8_offset256_out_p16, N, 2);
    expect_bits("adamw sr codes", codes, adamw_sr_int8_offset256_out_codes, 2 * N, 1);
    expect_bits("adamw sr scales", scales, adamw_sr_int8_offset256_out_scales, 2, 4);
}

static void adam_kahan_bf16(void) {
    enum { N = ADAM_KAHAN_BF16_N };
    uint16_t p[N], g[N], comp[N] = {0}, s[2 * N] = {0};
    FoAdam opt = fo_adam_default();
    memcpy(p, adam_kahan_bf16_in_p16, sizeof p);
    memcpy(g, adam_kahan_bf16_in_g16, sizeof g);
    FoPiece piece;
    memset(&piece, 0, sizeof piece);
    piece.params = p;
    piece.compensation = comp;
    piece.grads = g;
    piece.n = N;
    piece.param_format = FO_PARAM_BF16_KAHAN;
    piece.grad_format = FO_GRAD_F16;
    piece.state.values = s;
    piece.state.values_len = 2 * N;
    piece.state.format = FO_STATE_BF16;
    for (uint64_t t = 1; t <= 3; t++) expect_status("adam kahan step", fo_adam_step_ex(&opt, t, &piece), FO_OK);
    expect_bits("adam kahan params", p, adam_kahan_bf16_out_p16, N, 2);
    expect_bits("adam kahan compensation", comp, adam_kahan_bf16_out_comp, N, 2);
    expect_bits("adam kahan state", s, adam_kahan_bf16_out_v16, 2 * N, 2);
}

static void lion_f16_fp8(void) {
    enum { N = LION_F16_FP8_N };
    uint16_t p[N];
    float g[N];
    uint8_t codes[N] = {0};
    float scales[2] = {0};
    FoLion opt = fo_lion_default();
    opt.lr = 1e-2;
    memcpy(p, lion_f16_fp8_in_p16, sizeof p);
    memcpy(g, lion_f16_fp8_in_g32, sizeof g);
    FoPiece piece;
    memset(&piece, 0, sizeof piece);
    piece.params = p;
    piece.grads = g;
    piece.n = N;
    piece.param_format = FO_PARAM_F16;
    piece.grad_format = FO_GRAD_F32;
    piece.state.codes = codes;
    piece.state.codes_len = N;
    piece.state.scales = scales;
    piece.state.scales_len = 2;
    piece.state.format = FO_STATE_FP8;
    for (uint64_t t = 1; t <= 2; t++) expect_status("lion fp8 step", fo_lion_step_ex(&opt, t, &piece), FO_OK);
    expect_bits("lion f16 params", p, lion_f16_fp8_out_p16, N, 2);
    expect_bits("lion fp8 codes", codes, lion_f16_fp8_out_codes, N, 1);
    expect_bits("lion fp8 scales", scales, lion_f16_fp8_out_scales, 2, 4);
}

static void adagrad_int4_init(void) {
    enum { N = ADAGRAD_INT4_INIT_N };
    float p[N];
    uint16_t g[N];
    uint8_t codes[N / 2] = {0};
    float scales[2] = {0};
    FoAdagrad opt = fo_adagrad_default();
    opt.initial_accumulator_value = 0.5;
    memcpy(p, adagrad_int4_init_in_p32, sizeof p);
    memcpy(g, adagrad_int4_init_in_g16, sizeof g);
    FoPiece piece;
    memset(&piece, 0, sizeof piece);
    piece.params = p;
    piece.grads = g;
    piece.n = N;
    piece.param_format = FO_PARAM_F32;
    piece.grad_format = FO_GRAD_BF16;
    piece.state.codes = codes;
    piece.state.codes_len = N / 2;
    piece.state.scales = scales;
    piece.state.scales_len = 2;
    piece.state.format = FO_STATE_INT4;
    expect_status("adagrad init_state_ex", fo_adagrad_init_state_ex(&opt, &piece.state), FO_OK);
    expect_status("adagrad int4 step", fo_adagrad_step_ex(&opt, 1, &piece), FO_OK);
    expect_bits("adagrad params", p, adagrad_int4_init_out_p32, N, 4);
    expect_bits("adagrad int4 codes", codes, adagrad_int4_init_out_codes, N / 2, 1);
    expect_bits("adagrad int4 scales", scales, adagrad_int4_init_out_scales, 2, 4);
}

int main(void) {
    sgd_by_hand();
    adam_by_hand();
    defaults_and_errors();
    others_run();
    adam_by_hand_bf16();
    torchao_adamw8bit();
    adamw_sr_int8_offset256();
    adam_kahan_bf16();
    lion_f16_fp8();
    adagrad_int4_init();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
