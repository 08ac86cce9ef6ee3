/* test_decoder.c - self-test and stream decoder for edgeseg_proto.h.
 *
 *   test_decoder              self-test, then decode stdin and print one line per
 *                             message / grasp (the format tests/test_protocol_c.py
 *                             compares with the Python decoder), then "errors N"
 *   test_decoder --ack SEQ ACKED STATUS
 *                             write one ACK message (wire bytes) to stdout
 *
 * Build: gcc -std=c99 -Wall -Wextra -Werror -I contrib contrib/test_decoder.c -o test_decoder
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "edgeseg_proto.h"

static void pf(const char *name, float x) {
    if (isnan(x)) printf(" %s=nan", name);
    else printf(" %s=%.9g", name, (double)x);
}

static int self_test(void) {
    static const uint8_t check[] = "123456789";
    uint8_t in[600], enc[620], dec[600];
    size_t n, m, len, i;
    if (es_crc16(check, 9) != 0x29B1) {
        fprintf(stderr, "crc16 check value: got %04x, expected 29b1\n", es_crc16(check, 9));
        return 1;
    }
    for (len = 0; len < sizeof in; len += 37) {
        for (i = 0; i < len; i++) in[i] = (uint8_t)((i * 7 + len) % 5 == 0 ? 0 : i + 1);
        if (es_cobs_encode(in, len, enc, sizeof enc, &n) != ES_OK) return 2;
        for (i = 0; i < n; i++)
            if (enc[i] == 0) return 3;
        if (es_cobs_decode(enc, n, dec, sizeof dec, &m) != ES_OK || m != len || memcmp(in, dec, len) != 0) {
            fprintf(stderr, "cobs round trip failed at length %zu\n", len);
            return 4;
        }
    }
    return 0;
}

static void print_msg(const es_msg_t *msg) {
    unsigned i;
    printf("msg type=%u seq=%u t_us=%llu frame_id=%lu n=%u", msg->type, msg->seq,
           (unsigned long long)msg->timestamp_us, (unsigned long)msg->frame_id, msg->count);
    if (msg->type == ES_MSG_ACK) printf(" acked_seq=%u status=%u", msg->acked_seq, msg->ack_status);
    printf("\n");
    for (i = 0; i < msg->count; i++) {
        const es_grasp_t *g = &msg->grasps[i];
        int k;
        printf("grasp class=%u inst=%u flags=%u", g->class_id, g->instance, g->flags);
        pf("score", g->score);
        pf("quality", g->quality);
        pf("u", g->u);
        pf("v", g->v);
        pf("angle", g->angle);
        pf("width_px", g->width_px);
        if (g->has_camera) {
            for (k = 0; k < 3; k++) pf(k == 0 ? "cx" : k == 1 ? "cy" : "cz", g->camera[k]);
            pf("width_m", g->width_m);
        }
        if (g->has_robot) {
            for (k = 0; k < 3; k++) pf(k == 0 ? "rx" : k == 1 ? "ry" : "rz", g->robot[k]);
            pf("yaw", g->yaw);
            for (k = 0; k < 4; k++) pf(k == 0 ? "qx" : k == 1 ? "qy" : k == 2 ? "qz" : "qw", g->quat[k]);
        }
        if (g->has_track) {
            if (g->track_id == ES_NO_TRACK) printf(" track=none");
            else printf(" track=%lu", (unsigned long)g->track_id);
        }
        printf("\n");
    }
}

int main(int argc, char **argv) {
    static es_stream_t rx;
    static es_msg_t msg;
    int c, rc;
    if (argc == 5 && strcmp(argv[1], "--ack") == 0) {
        uint8_t out[64];
        size_t n = 0;
        if (es_encode_ack((uint16_t)atoi(argv[2]), 0, (uint16_t)atoi(argv[3]), (uint8_t)atoi(argv[4]), out,
                          sizeof out, &n) != ES_OK)
            return 2;
        fwrite(out, 1, n, stdout);
        return 0;
    }
    rc = self_test();
    if (rc != 0) return 10 + rc;
    es_stream_init(&rx);
    while ((c = getchar()) != EOF) {
        rc = es_stream_push(&rx, (uint8_t)c, &msg);
        if (rc == ES_FRAME_READY) print_msg(&msg);
        else if (rc < 0) printf("dropped error=%d\n", rc);
    }
    printf("errors %lu ok %lu\n", (unsigned long)rx.frames_bad, (unsigned long)rx.frames_ok);
    return 0;
}
