/* Smoke test of the C interface: SGD and Adam steps on values derived by hand (the Rust tests
 * `sgd_by_hand` and `adam_by_hand` in src/tests.rs check the same inputs and bits), torch's
 * defaults, and the error codes. Exits 0 when every check passes. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "fused_optim.h"

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

int main(void) {
    sgd_by_hand();
    adam_by_hand();
    defaults_and_errors();
    others_run();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
