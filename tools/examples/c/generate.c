/* Loads a .tfq model through libtfq and generates greedily from a prompt, printing the
 * text as it streams: the C counterpart of `tfq run MODEL --prompt TEXT -n N`.
 *
 *   cc generate.c -I include -L DIR -ltfq -Wl,-rpath,DIR -o generate
 *   ./generate MODEL "prompt text" 64
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfq.h"

/* Reports a failed call: the message of tfq_last_error() and the status's name. */
static int fail(tfq_status status) {
    fprintf(stderr, "error: %s (%s)\n", tfq_last_error(), tfq_status_name(status));
    return 1;
}

static int print_piece(int32_t token, const char *text, size_t length, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(text, 1, length, stdout);
    fflush(stdout);
    return 0; /* keep going */
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N\n", argv[0]);
        return 2;
    }
    tfq_status status;
    tfq_model *model = NULL;
    if ((status = tfq_model_open(argv[1], &model)) != TFQ_OK) return fail(status);
    tfq_model_info info;
    tfq_model_get_info(model, &info);

    size_t count = 0;
    size_t length = strlen(argv[2]);
    int32_t *prompt = malloc(sizeof(int32_t) * (length + 1));
    if ((status = tfq_tokenize(model, argv[2], length, prompt, length + 1, &count)) != TFQ_OK) return fail(status);

    tfq_session *session = NULL;
    if ((status = tfq_session_new(model, 1, &session)) != TFQ_OK) return fail(status);
    tfq_model_close(model); /* the session keeps the model alive */

    int32_t generated = 0;
    if ((status = tfq_generate(session, prompt, count, atoi(argv[3]), NULL, print_piece, NULL, &generated)) != TFQ_OK) {
        return fail(status);
    }
    printf("\n");
    fprintf(stderr, "tfq %s: %d tokens from a %d-token prompt (vocab %d, %s)\n", tfq_version(), generated, (int)count,
            info.vocab_size, info.quantized ? "int8" : "float");

    /* Misuse is reported, not crashed on. */
    if (tfq_session_reset(NULL) != TFQ_ERROR_INVALID_ARGUMENT) return 3;
    tfq_session_free(session);
    if (tfq_session_reset(session) != TFQ_ERROR_INVALID_ARGUMENT) return 3; /* closed handle */
    free(prompt);
    return 0;
}
