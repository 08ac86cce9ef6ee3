/* edgeseg_proto.h - header-only C99 decoder for the edgeseg robot-link protocol v1.1 (reads 1.0 too).
 *
 * For microcontroller-side controllers: no malloc, fixed buffers, byte-at-a-time
 * stream decoding (call es_stream_push from a UART ISR or poll loop).
 * Spec: docs/protocol.md. Frame = COBS(header | records | body | CRC16) 0x00,
 * little-endian, CRC-16/CCITT-FALSE over everything before the CRC.
 *
 * Usage:
 *   static es_stream_t rx;  es_stream_init(&rx);
 *   static es_msg_t msg;
 *   for each received byte b:
 *       int r = es_stream_push(&rx, b, &msg);
 *       if (r == ES_FRAME_READY) use msg (msg.type, msg.count, msg.grasps[i] ...)
 *       else if (r < 0) a frame was dropped (r = ES_ERR_*), decoding goes on.
 *
 * Configure before including: ES_PROTO_MAX_GRASPS (records kept per message,
 * default 16; a message with more records is rejected with ES_ERR_TOO_MANY).
 * Assumes IEEE-754 binary32 floats (checked at compile time by size).
 */
#ifndef EDGESEG_PROTO_H
#define EDGESEG_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef ES_PROTO_MAX_GRASPS
#define ES_PROTO_MAX_GRASPS 16
#endif

#define ES_PROTO_VERSION 1       /* major version: frames of another major are rejected */
#define ES_PROTO_MINOR 2         /* header byte 9; any minor of the major version is accepted */
#define ES_HEADER_SIZE 22
#define ES_RECORD_BASE 28     /* class..width_px */
#define ES_BLOCK_CAMERA 16    /* x y z width_m */
#define ES_BLOCK_ROBOT 32     /* x y z yaw qx qy qz qw */
#define ES_BLOCK_TRACK 4      /* protocol 1.1: u32 track id */
#define ES_RECORD_MAX (ES_RECORD_BASE + ES_BLOCK_CAMERA + ES_BLOCK_ROBOT + ES_BLOCK_TRACK)
/* Largest raw frame accepted: header + records + ack body + CRC (bytes). */
#define ES_PROTO_MAX_FRAME (ES_HEADER_SIZE + ES_PROTO_MAX_GRASPS * ES_RECORD_MAX + 4 + 2)
/* Largest COBS-encoded frame (without delimiter). */
#define ES_PROTO_MAX_ENCODED (ES_PROTO_MAX_FRAME + ES_PROTO_MAX_FRAME / 254 + 1)

/* Message types (header byte 3). */
#define ES_MSG_GRASPS 1
#define ES_MSG_HEARTBEAT 2
#define ES_MSG_ACK 3
#define ES_MSG_REQUEST 4 /* pick server (1.1), docs/pick_server.md: body kept in raw, not parsed here */
#define ES_MSG_REPLY 5
#define ES_MSG_MODEL 6   /* (1.2) bundle identity, body kept in raw (docs/protocol.md section 14) */
/* Header flags (byte 6): optional record blocks present. */
#define ES_FLAG_CAMERA 0x01
#define ES_FLAG_ROBOT 0x02
#define ES_FLAG_TRUNCATED 0x04 /* (1.1) the frame had more grasps than count */
#define ES_FLAG_TRACK 0x08     /* (1.2) records end with a track id */
#define ES_NO_TRACK 0xFFFFFFFFu /* track_id of an untracked instance */
/* Record flags (record byte 3). */
#define ES_REC_CLEAR 0x01  /* no neighbouring mask in the fingers' sweep */
#define ES_REC_FITS 0x02   /* opening within the gripper's range */
#define ES_REC_METRIC 0x04 /* width_m / camera point valid */
#define ES_REC_CLEAR_CHECKED 0x08 /* (1.1) CLEAR was tested: 0 means blocked, not unknown */
#define ES_REC_FITS_CHECKED 0x10  /* (1.1) FITS was tested: 0 means too wide, not unknown */
#define ES_REC_ROBOT_VALID 0x20   /* (1.1) robot block holds a valid pose */

/* Status codes: 0 = ok, negative = error. */
#define ES_OK 0
#define ES_FRAME_READY 1
#define ES_ERR_COBS (-1)     /* bad COBS code */
#define ES_ERR_CRC (-2)      /* CRC mismatch */
#define ES_ERR_SHORT (-3)    /* shorter than header + CRC, or records past the end */
#define ES_ERR_MAGIC (-4)    /* not "ES" */
#define ES_ERR_VERSION (-5)  /* version != ES_PROTO_VERSION */
#define ES_ERR_LAYOUT (-6)   /* record_size too small for the flags, or unknown type */
#define ES_ERR_OVERFLOW (-7) /* frame longer than the buffers */
#define ES_ERR_TOO_MANY (-8) /* more records than ES_PROTO_MAX_GRASPS */
#define ES_ERR_ARG (-9)      /* bad argument (NULL, capacity too small) */

typedef char es_float_is_32bit[(sizeof(float) == 4) ? 1 : -1];

/* One grasp record; see docs/protocol.md for units (pixels, radians, metres). */
typedef struct {
    uint16_t class_id;
    uint8_t instance;
    uint8_t flags;     /* ES_REC_* */
    float score, quality;
    float u, v;        /* grasp centre, image pixels */
    float angle;       /* closing direction, rad from +x towards +y */
    float width_px;    /* jaw opening, pixels */
    int has_camera;    /* header had ES_FLAG_CAMERA */
    float camera[3];   /* x y z, metres, camera frame (NaN if unknown) */
    float width_m;     /* jaw opening, metres (NaN if unknown) */
    int has_robot;     /* header had ES_FLAG_ROBOT */
    float robot[3];    /* x y z, metres, robot base frame */
    float yaw;         /* rad about base +z */
    float quat[4];     /* qx qy qz qw */
    int has_track;     /* header had ES_FLAG_TRACK (protocol 1.1) */
    uint32_t track_id; /* the instance's track id, ES_NO_TRACK if untracked */
} es_grasp_t;

/* One decoded message. */
typedef struct {
    uint8_t version, minor, type, flags, count, record_size;
    uint16_t seq;           /* sender's per-link sequence number */
    uint64_t timestamp_us;  /* sender clock, us since the Unix epoch */
    uint32_t frame_id;      /* camera frame id (GRASPS) */
    uint16_t acked_seq;     /* ACK only */
    uint8_t ack_status;     /* ACK only */
    es_grasp_t grasps[ES_PROTO_MAX_GRASPS];
} es_msg_t;

/* Stream decoder state; zero it with es_stream_init. */
typedef struct {
    uint8_t enc[ES_PROTO_MAX_ENCODED];
    uint8_t raw[ES_PROTO_MAX_FRAME];
    size_t len;
    int overflow;
    uint32_t frames_ok, frames_bad;
    int last_error;
} es_stream_t;

static inline uint16_t es_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t es_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline float es_rdf(const uint8_t *p) {
    uint32_t u = es_rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline void es_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xor-out. */
static inline uint16_t es_crc16(const uint8_t *data, size_t n) {
    uint16_t crc = 0xFFFF;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* COBS-decodes in[0..n) (no delimiter) into out (capacity cap); *out_len = bytes written. */
static inline int es_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
    size_t i = 0, o = 0, k;
    if (!in || !out || !out_len) return ES_ERR_ARG;
    while (i < n) {
        uint8_t code = in[i];
        if (code == 0 || i + code > n) return ES_ERR_COBS;
        for (k = 1; k < code; k++) {
            if (in[i + k] == 0) return ES_ERR_COBS;
            if (o >= cap) return ES_ERR_OVERFLOW;
            out[o++] = in[i + k];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= cap) return ES_ERR_OVERFLOW;
            out[o++] = 0;
        }
    }
    *out_len = o;
    return ES_OK;
}

/* COBS-encodes in[0..n) into out (capacity cap, needs n + n/254 + 1); no delimiter added. */
static inline int es_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len) {
    size_t i, o = 1, code_at = 0;
    uint8_t code = 1;
    if (!in || !out || !out_len || cap < n + n / 254 + 1) return ES_ERR_ARG;
    for (i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    *out_len = o;
    return ES_OK;
}

/* Parses one raw (COBS-decoded) frame of n bytes into *msg. */
static inline int es_parse(const uint8_t *raw, size_t n, es_msg_t *msg) {
    size_t need, body, i;
    if (!raw || !msg) return ES_ERR_ARG;
    if (n < ES_HEADER_SIZE + 2) return ES_ERR_SHORT;
    if (es_crc16(raw, n - 2) != es_rd16(raw + n - 2)) return ES_ERR_CRC;
    if (raw[0] != 'E' || raw[1] != 'S') return ES_ERR_MAGIC;
    if (raw[2] != ES_PROTO_VERSION) return ES_ERR_VERSION;
    memset(msg, 0, sizeof *msg);
    msg->version = raw[2];
    msg->minor = raw[9]; /* 0 from a 1.0 sender */
    msg->type = raw[3];
    msg->seq = es_rd16(raw + 4);
    msg->flags = raw[6];
    msg->count = raw[7];
    msg->record_size = raw[8];
    msg->timestamp_us = (uint64_t)es_rd32(raw + 10) | ((uint64_t)es_rd32(raw + 14) << 32);
    msg->frame_id = es_rd32(raw + 18);
    if (msg->type < ES_MSG_GRASPS || msg->type > ES_MSG_MODEL) return ES_ERR_LAYOUT;
    need = ES_RECORD_BASE + ((msg->flags & ES_FLAG_CAMERA) ? ES_BLOCK_CAMERA : 0) +
           ((msg->flags & ES_FLAG_ROBOT) ? ES_BLOCK_ROBOT : 0) + ((msg->flags & ES_FLAG_TRACK) ? ES_BLOCK_TRACK : 0);
    if (msg->count && msg->record_size < need) return ES_ERR_LAYOUT;
#if ES_PROTO_MAX_GRASPS < 255 /* count is one byte: at 255 every count fits (and -Wtype-limits stays quiet) */
    if (msg->count > ES_PROTO_MAX_GRASPS) return ES_ERR_TOO_MANY;
#endif
    body = ES_HEADER_SIZE + (size_t)msg->count * msg->record_size;
    if (body + (msg->type == ES_MSG_ACK ? 4u : 0u) > n - 2) return ES_ERR_SHORT;
    for (i = 0; i < msg->count; i++) {
        const uint8_t *r = raw + ES_HEADER_SIZE + i * msg->record_size;
        es_grasp_t *g = &msg->grasps[i];
        int k;
        g->class_id = es_rd16(r);
        g->instance = r[2];
        g->flags = r[3];
        g->score = es_rdf(r + 4);
        g->quality = es_rdf(r + 8);
        g->u = es_rdf(r + 12);
        g->v = es_rdf(r + 16);
        g->angle = es_rdf(r + 20);
        g->width_px = es_rdf(r + 24);
        r += ES_RECORD_BASE;
        if (msg->flags & ES_FLAG_CAMERA) {
            g->has_camera = 1;
            for (k = 0; k < 3; k++) g->camera[k] = es_rdf(r + 4 * k);
            g->width_m = es_rdf(r + 12);
            r += ES_BLOCK_CAMERA;
        }
        if (msg->flags & ES_FLAG_ROBOT) {
            g->has_robot = 1;
            for (k = 0; k < 3; k++) g->robot[k] = es_rdf(r + 4 * k);
            g->yaw = es_rdf(r + 12);
            for (k = 0; k < 4; k++) g->quat[k] = es_rdf(r + 16 + 4 * k);
            r += ES_BLOCK_ROBOT;
        }
        if (msg->flags & ES_FLAG_TRACK) {
            g->has_track = 1;
            g->track_id = es_rd32(r);
        }
    }
    if (msg->type == ES_MSG_ACK) {
        msg->acked_seq = es_rd16(raw + body);
        msg->ack_status = raw[body + 2];
    }
    return ES_OK;
}

static inline void es_stream_init(es_stream_t *s) { memset(s, 0, sizeof *s); }

/* Feeds one byte. Returns ES_FRAME_READY when *msg holds a new message, 0 when
 * more bytes are needed, or a negative ES_ERR_* when a frame was dropped (the
 * decoder has already resynchronised on the 0x00 that ended it). */
static inline int es_stream_push(es_stream_t *s, uint8_t byte, es_msg_t *msg) {
    size_t raw_len = 0;
    int rc;
    if (byte != 0) {
        if (s->len < sizeof s->enc) s->enc[s->len++] = byte;
        else s->overflow = 1;
        return 0;
    }
    if (s->len == 0 && !s->overflow) return 0; /* empty frame / extra delimiter */
    if (s->overflow) rc = ES_ERR_OVERFLOW;
    else rc = es_cobs_decode(s->enc, s->len, s->raw, sizeof s->raw, &raw_len);
    if (rc == ES_OK) rc = es_parse(s->raw, raw_len, msg);
    s->len = 0;
    s->overflow = 0;
    if (rc != ES_OK) {
        s->frames_bad++;
        s->last_error = rc;
        return rc;
    }
    s->frames_ok++;
    return ES_FRAME_READY;
}

/* Builds an ACK message (controller -> host) on the wire: COBS frame + 0x00.
 * out needs at least 32 bytes; *out_len = bytes written. */
static inline int es_encode_ack(uint16_t seq, uint64_t timestamp_us, uint16_t acked_seq, uint8_t status,
                                uint8_t *out, size_t cap, size_t *out_len) {
    uint8_t raw[ES_HEADER_SIZE + 4 + 2];
    size_t n = 0;
    int k, rc;
    if (!out || !out_len) return ES_ERR_ARG;
    memset(raw, 0, sizeof raw);
    raw[0] = 'E';
    raw[1] = 'S';
    raw[2] = ES_PROTO_VERSION;
    raw[3] = ES_MSG_ACK;
    raw[9] = ES_PROTO_MINOR;
    es_wr16(raw + 4, seq);
    for (k = 0; k < 8; k++) raw[10 + k] = (uint8_t)(timestamp_us >> (8 * k));
    es_wr16(raw + ES_HEADER_SIZE, acked_seq);
    raw[ES_HEADER_SIZE + 2] = status;
    es_wr16(raw + ES_HEADER_SIZE + 4, es_crc16(raw, ES_HEADER_SIZE + 4));
    if (cap < sizeof raw + sizeof raw / 254 + 2) return ES_ERR_ARG;
    rc = es_cobs_encode(raw, sizeof raw, out, cap - 1, &n);
    if (rc != ES_OK) return rc;
    out[n++] = 0;
    *out_len = n;
    return ES_OK;
}

#endif /* EDGESEG_PROTO_H */
