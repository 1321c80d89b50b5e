/* Compile-time check of the header against the Rust side: every exported function assigned
 * to a pointer of its exact prototype (an incompatible pointer type is an error with -Werror),
 * and the field offsets the Rust test `struct_layouts_match_the_header` asserts. Linking this
 * file against the library also proves that every declared function is defined. */
#include <stddef.h>
#include "fused_optim.h"

#define OFFSET(T, f, n) _Static_assert(offsetof(T, f) == (n), #T "." #f)

OFFSET(FoSgd, nesterov, 32);
OFFSET(FoSgd, maximize, 36);
OFFSET(FoAdam, amsgrad, 40);
OFFSET(FoAdam, maximize, 44);
OFFSET(FoAdam, decoupled_weight_decay, 48);
OFFSET(FoAdagrad, maximize, 40);
OFFSET(FoAdadelta, maximize, 32);
OFFSET(FoRmsprop, centered, 40);
OFFSET(FoRmsprop, maximize, 44);
OFFSET(FoAdamax, maximize, 40);
OFFSET(FoNadam, decoupled_weight_decay, 48);
OFFSET(FoNadam, maximize, 52);
OFFSET(FoRadam, decoupled_weight_decay, 40);
OFFSET(FoRadam, maximize, 44);
OFFSET(FoLion, maximize, 32);
OFFSET(FoNadamScalars, mu_product, 0);

int main(void) {
    const char *(*status_message)(int) = fo_status_message;
    void *volatile sink;
    sink = (void *)&status_message;
    {
        FoSgd (*d)(void) = fo_sgd_default;
        int (*v)(const FoSgd *) = fo_sgd_validate;
        size_t (*l)(const FoSgd *, size_t) = fo_sgd_state_len;
        int (*i)(const FoSgd *, float *, size_t) = fo_sgd_init_state;
        int (*s)(const FoSgd *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_sgd_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdam (*d)(void) = fo_adam_default;
        int (*v)(const FoAdam *) = fo_adam_validate;
        size_t (*l)(const FoAdam *, size_t) = fo_adam_state_len;
        int (*i)(const FoAdam *, float *, size_t) = fo_adam_init_state;
        int (*s)(const FoAdam *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adam_step;
        FoAdam (*w)(void) = fo_adamw_default;
        sink = (void *)&w;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdagrad (*d)(void) = fo_adagrad_default;
        int (*v)(const FoAdagrad *) = fo_adagrad_validate;
        size_t (*l)(const FoAdagrad *, size_t) = fo_adagrad_state_len;
        int (*i)(const FoAdagrad *, float *, size_t) = fo_adagrad_init_state;
        int (*s)(const FoAdagrad *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adagrad_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdadelta (*d)(void) = fo_adadelta_default;
        int (*v)(const FoAdadelta *) = fo_adadelta_validate;
        size_t (*l)(const FoAdadelta *, size_t) = fo_adadelta_state_len;
        int (*i)(const FoAdadelta *, float *, size_t) = fo_adadelta_init_state;
        int (*s)(const FoAdadelta *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adadelta_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoRmsprop (*d)(void) = fo_rmsprop_default;
        int (*v)(const FoRmsprop *) = fo_rmsprop_validate;
        size_t (*l)(const FoRmsprop *, size_t) = fo_rmsprop_state_len;
        int (*i)(const FoRmsprop *, float *, size_t) = fo_rmsprop_init_state;
        int (*s)(const FoRmsprop *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_rmsprop_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdamax (*d)(void) = fo_adamax_default;
        int (*v)(const FoAdamax *) = fo_adamax_validate;
        size_t (*l)(const FoAdamax *, size_t) = fo_adamax_state_len;
        int (*i)(const FoAdamax *, float *, size_t) = fo_adamax_init_state;
        int (*s)(const FoAdamax *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adamax_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoNadam (*d)(void) = fo_nadam_default;
        int (*v)(const FoNadam *) = fo_nadam_validate;
        size_t (*l)(const FoNadam *, size_t) = fo_nadam_state_len;
        int (*i)(const FoNadam *, float *, size_t) = fo_nadam_init_state;
        int (*s)(const FoNadam *, uint64_t, const FoNadamScalars *, FoNadamScalars *, float *,
                 const float *, size_t, float *, size_t) = fo_nadam_step;
        FoNadamScalars (*sd)(void) = fo_nadam_scalars_default;
        sink = (void *)&sd;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoRadam (*d)(void) = fo_radam_default;
        int (*v)(const FoRadam *) = fo_radam_validate;
        size_t (*l)(const FoRadam *, size_t) = fo_radam_state_len;
        int (*i)(const FoRadam *, float *, size_t) = fo_radam_init_state;
        int (*s)(const FoRadam *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_radam_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoLion (*d)(void) = fo_lion_default;
        int (*v)(const FoLion *) = fo_lion_validate;
        size_t (*l)(const FoLion *, size_t) = fo_lion_state_len;
        int (*i)(const FoLion *, float *, size_t) = fo_lion_init_state;
        int (*s)(const FoLion *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_lion_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    (void)sink;
    return 0;
}
