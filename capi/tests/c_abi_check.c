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
OFFSET(FoTorchaoAdam, amsgrad, 40);
OFFSET(FoTorchaoAdam, is_adamw, 44);
OFFSET(FoTorchaoAdam, format, 48);
OFFSET(FoSparseAdam, eps, 24);
OFFSET(FoSparseAdam, maximize, 32);
/* The pointer-sized structs, as src/tests.rs `struct_layouts_match_the_header` asserts them. */
OFFSET(FoStateLayout, codes, sizeof(size_t));
OFFSET(FoStateLayout, block, 3 * sizeof(size_t));
OFFSET(FoState, codes, 2 * sizeof(size_t));
OFFSET(FoState, scales, 4 * sizeof(size_t));
OFFSET(FoState, format, 6 * sizeof(size_t));
OFFSET(FoPiece, seed, 0);
OFFSET(FoPiece, params, 8);
OFFSET(FoPiece, compensation, 8 + sizeof(size_t));
OFFSET(FoPiece, grads, 8 + 2 * sizeof(size_t));
OFFSET(FoPiece, n, 8 + 3 * sizeof(size_t));
OFFSET(FoPiece, offset, 8 + 4 * sizeof(size_t));
OFFSET(FoPiece, state, 8 + 5 * sizeof(size_t));
OFFSET(FoPiece, param_format, 8 + 5 * sizeof(size_t) + sizeof(FoState));
OFFSET(FoPiece, grad_format, 12 + 5 * sizeof(size_t) + sizeof(FoState));

int main(void) {
    const char *(*status_message)(int) = fo_status_message;
    void *volatile sink;
    sink = (void *)&status_message;
    {
        FoSgd (*d)(void) = fo_sgd_default;
        int (*v)(const FoSgd *) = fo_sgd_validate;
        size_t (*l)(const FoSgd *, size_t) = fo_sgd_state_len;
        int (*i)(const FoSgd *, float *, size_t) = fo_sgd_init_state;
        int (*ie)(const FoSgd *, const FoState *) = fo_sgd_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoSgd *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_sgd_step;
        int (*se)(const FoSgd *, uint64_t, const FoPiece *) = fo_sgd_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdam (*d)(void) = fo_adam_default;
        int (*v)(const FoAdam *) = fo_adam_validate;
        size_t (*l)(const FoAdam *, size_t) = fo_adam_state_len;
        int (*i)(const FoAdam *, float *, size_t) = fo_adam_init_state;
        int (*ie)(const FoAdam *, const FoState *) = fo_adam_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoAdam *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adam_step;
        int (*se)(const FoAdam *, uint64_t, const FoPiece *) = fo_adam_step_ex;
        sink = (void *)&se;
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
        int (*ie)(const FoAdagrad *, const FoState *) = fo_adagrad_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoAdagrad *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adagrad_step;
        int (*se)(const FoAdagrad *, uint64_t, const FoPiece *) = fo_adagrad_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdadelta (*d)(void) = fo_adadelta_default;
        int (*v)(const FoAdadelta *) = fo_adadelta_validate;
        size_t (*l)(const FoAdadelta *, size_t) = fo_adadelta_state_len;
        int (*i)(const FoAdadelta *, float *, size_t) = fo_adadelta_init_state;
        int (*ie)(const FoAdadelta *, const FoState *) = fo_adadelta_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoAdadelta *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adadelta_step;
        int (*se)(const FoAdadelta *, uint64_t, const FoPiece *) = fo_adadelta_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoRmsprop (*d)(void) = fo_rmsprop_default;
        int (*v)(const FoRmsprop *) = fo_rmsprop_validate;
        size_t (*l)(const FoRmsprop *, size_t) = fo_rmsprop_state_len;
        int (*i)(const FoRmsprop *, float *, size_t) = fo_rmsprop_init_state;
        int (*ie)(const FoRmsprop *, const FoState *) = fo_rmsprop_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoRmsprop *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_rmsprop_step;
        int (*se)(const FoRmsprop *, uint64_t, const FoPiece *) = fo_rmsprop_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAdamax (*d)(void) = fo_adamax_default;
        int (*v)(const FoAdamax *) = fo_adamax_validate;
        size_t (*l)(const FoAdamax *, size_t) = fo_adamax_state_len;
        int (*i)(const FoAdamax *, float *, size_t) = fo_adamax_init_state;
        int (*ie)(const FoAdamax *, const FoState *) = fo_adamax_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoAdamax *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_adamax_step;
        int (*se)(const FoAdamax *, uint64_t, const FoPiece *) = fo_adamax_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoNadam (*d)(void) = fo_nadam_default;
        int (*v)(const FoNadam *) = fo_nadam_validate;
        size_t (*l)(const FoNadam *, size_t) = fo_nadam_state_len;
        int (*i)(const FoNadam *, float *, size_t) = fo_nadam_init_state;
        int (*ie)(const FoNadam *, const FoState *) = fo_nadam_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoNadam *, uint64_t, const FoNadamScalars *, FoNadamScalars *, float *,
                 const float *, size_t, float *, size_t) = fo_nadam_step;
        FoNadamScalars (*sd)(void) = fo_nadam_scalars_default;
        int (*se)(const FoNadam *, uint64_t, const FoNadamScalars *, FoNadamScalars *, const FoPiece *) =
            fo_nadam_step_ex;
        sink = (void *)&sd;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoRadam (*d)(void) = fo_radam_default;
        int (*v)(const FoRadam *) = fo_radam_validate;
        size_t (*l)(const FoRadam *, size_t) = fo_radam_state_len;
        int (*i)(const FoRadam *, float *, size_t) = fo_radam_init_state;
        int (*ie)(const FoRadam *, const FoState *) = fo_radam_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoRadam *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_radam_step;
        int (*se)(const FoRadam *, uint64_t, const FoPiece *) = fo_radam_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoLion (*d)(void) = fo_lion_default;
        int (*v)(const FoLion *) = fo_lion_validate;
        size_t (*l)(const FoLion *, size_t) = fo_lion_state_len;
        int (*i)(const FoLion *, float *, size_t) = fo_lion_init_state;
        int (*ie)(const FoLion *, const FoState *) = fo_lion_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoLion *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_lion_step;
        int (*se)(const FoLion *, uint64_t, const FoPiece *) = fo_lion_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoRprop (*d)(void) = fo_rprop_default;
        int (*v)(const FoRprop *) = fo_rprop_validate;
        size_t (*l)(const FoRprop *, size_t) = fo_rprop_state_len;
        int (*i)(const FoRprop *, float *, size_t) = fo_rprop_init_state;
        int (*ie)(const FoRprop *, const FoState *) = fo_rprop_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoRprop *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_rprop_step;
        int (*se)(const FoRprop *, uint64_t, const FoPiece *) = fo_rprop_step_ex;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        FoAsgd (*d)(void) = fo_asgd_default;
        int (*v)(const FoAsgd *) = fo_asgd_validate;
        size_t (*l)(const FoAsgd *, size_t) = fo_asgd_state_len;
        int (*i)(const FoAsgd *, float *, size_t) = fo_asgd_init_state;
        int (*ie)(const FoAsgd *, const FoState *) = fo_asgd_init_state_ex;
        sink = (void *)&ie;
        int (*s)(const FoAsgd *, uint64_t, const FoAsgdScalars *, FoAsgdScalars *, float *,
                 const float *, size_t, float *, size_t) = fo_asgd_step;
        FoAsgdScalars (*sd)(void) = fo_asgd_scalars_default;
        int (*se)(const FoAsgd *, uint64_t, const FoAsgdScalars *, FoAsgdScalars *, const FoPiece *) =
            fo_asgd_step_ex;
        sink = (void *)&sd;
        sink = (void *)&se;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    {
        int (*layout)(int32_t, size_t, size_t, FoStateLayout *) = fo_state_layout;
        FoTorchaoAdam (*d[6])(void) = {fo_torchao_adamw8bit_default, fo_torchao_adam8bit_default,
                                       fo_torchao_adamw4bit_default, fo_torchao_adam4bit_default,
                                       fo_torchao_adamw_fp8_default, fo_torchao_adam_fp8_default};
        int (*v)(const FoTorchaoAdam *) = fo_torchao_adam_validate;
        size_t (*l)(const FoTorchaoAdam *, size_t) = fo_torchao_adam_state_len;
        int (*i)(const FoTorchaoAdam *, float *, size_t) = fo_torchao_adam_init_state;
        int (*ie)(const FoTorchaoAdam *, const FoState *) = fo_torchao_adam_init_state_ex;
        int (*s)(const FoTorchaoAdam *, uint64_t, float *, const float *, size_t, float *, size_t) =
            fo_torchao_adam_step;
        int (*se)(const FoTorchaoAdam *, uint64_t, const FoPiece *) = fo_torchao_adam_step_ex;
        int32_t (*ff)(const FoTorchaoAdam *, size_t, int32_t) = fo_torchao_adam_state_format_for;
        sink = (void *)&layout; sink = (void *)&d; sink = (void *)&v; sink = (void *)&l;
        sink = (void *)&i; sink = (void *)&ie; sink = (void *)&s; sink = (void *)&se; sink = (void *)&ff;
        if (layout == NULL || v == NULL || l == NULL || i == NULL || ie == NULL || s == NULL || se == NULL || ff == NULL) return 1;
    }
    {
        FoSparseAdam (*d)(void) = fo_sparse_adam_default;
        int (*v)(const FoSparseAdam *) = fo_sparse_adam_validate;
        size_t (*l)(const FoSparseAdam *, size_t) = fo_sparse_adam_state_len;
        int (*i)(const FoSparseAdam *, float *, size_t) = fo_sparse_adam_init_state;
        int (*s)(const FoSparseAdam *, uint64_t, float *, size_t, size_t, const int64_t *, size_t,
                 const float *, float *, size_t) = fo_sparse_adam_step;
        sink = (void *)&d; sink = (void *)&v; sink = (void *)&l; sink = (void *)&i; sink = (void *)&s;
        if (d == NULL || v == NULL || l == NULL || i == NULL || s == NULL) return 1;
    }
    (void)sink;
    return 0;
}
