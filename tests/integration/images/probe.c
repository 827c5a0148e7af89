/* A static Lambda runtime (and extension) for image tests: no libc beyond the static one,
 * so it runs in a FROM-scratch image.
 *
 * As a runtime (any name but one under /opt/extensions): answers every invocation with a
 * JSON document of what it sees: argv, cwd, uid, the whole environment, the event, whether
 * /tmp and / are writable and whether the extension registered.  An event with a "sleep"
 * key makes it sleep 5 s first (for timeouts); {"exists": "/path"} asks whether a path
 * exists.
 * As an extension (argv[0] under /opt/extensions): registers for INVOKE, writes
 * /tmp/ext-registered, and waits for events until SHUTDOWN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

static char api_host[64];
static int api_port;

static int connect_api(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(api_port);
    inet_pton(AF_INET, api_host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) exit(1);
        s += w;
        n -= (size_t)w;
    }
}

/* One HTTP exchange; returns the body (malloc'd), copies header `want` into `hval`. */
static char *http(const char *method, const char *path, const char *extra_headers,
                  const char *body, const char *want, char *hval, size_t hlen) {
    int fd = connect_api();
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, api_host, api_port, extra_headers, blen);
    write_all(fd, head, (size_t)n);
    if (blen) write_all(fd, body, blen);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep) return strdup("");
    *sep = 0;
    if (want && hval) {
        hval[0] = 0;
        for (char *line = strtok(buf, "\r\n"); line; line = strtok(NULL, "\r\n")) {
            if (strncasecmp(line, want, strlen(want)) == 0 && line[strlen(want)] == ':') {
                char *v = line + strlen(want) + 1;
                while (*v == ' ') v++;
                snprintf(hval, hlen, "%s", v);
            }
        }
    }
    char *out = strdup(sep + 4);
    free(buf);
    return out;
}

static void json_str(char **out, size_t *len, size_t *cap, const char *s) {
    for (; ; s++) {
        if (*len + 8 > *cap) *out = realloc(*out, *cap *= 2);
        char c = s ? *s : 0;
        if (!s || c == 0) break;
        if (c == '"' || c == '\\') { (*out)[(*len)++] = '\\'; (*out)[(*len)++] = c; }
        else if ((unsigned char)c < 0x20) { *len += (size_t)sprintf(*out + *len, "\\u%04x", c); }
        else (*out)[(*len)++] = c;
    }
}

static void add(char **out, size_t *len, size_t *cap, const char *s) {
    size_t n = strlen(s);
    while (*len + n + 8 > *cap) *out = realloc(*out, *cap *= 2);
    memcpy(*out + *len, s, n);
    *len += n;
}

static int writable(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 0;
    close(fd);
    unlink(path);
    return 1;
}

static void parse_api(void) {
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api) {
        fprintf(stderr, "probe: AWS_LAMBDA_RUNTIME_API is not set\n");
        exit(3);
    }
    snprintf(api_host, sizeof api_host, "%s", api);
    char *colon = strchr(api_host, ':');
    api_port = colon ? atoi(colon + 1) : 80;
    if (colon) *colon = 0;
}

static int extension(const char *name) {
    char id[256], hdr[512];
    snprintf(hdr, sizeof hdr, "Lambda-Extension-Name: %s\r\n", name);
    free(http("POST", "/2020-01-01/extension/register", hdr, "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}",
              "Lambda-Extension-Identifier", id, sizeof id));
    close(open("/tmp/ext-registered", O_WRONLY | O_CREAT, 0644));
    snprintf(hdr, sizeof hdr, "Lambda-Extension-Identifier: %s\r\n", id);
    for (;;) {
        char *ev = http("GET", "/2020-01-01/extension/event/next", hdr, NULL, NULL, NULL, 0);
        int shutdown = strstr(ev, "SHUTDOWN") != NULL;
        free(ev);
        if (shutdown) return 0;
    }
}

int main(int argc, char **argv) {
    parse_api();
    if (strncmp(argv[0], "/opt/extensions/", 16) == 0) return extension(argv[0] + 16);
    fprintf(stderr, "probe runtime starting\n");
    for (;;) {
        char rid[256];
        char *event = http("GET", "/2018-06-01/runtime/invocation/next", "", NULL,
                           "Lambda-Runtime-Aws-Request-Id", rid, sizeof rid);
        if (strstr(event, "\"sleep\"")) sleep(5); /* outlives a 1 s Timeout */
        size_t cap = 65536, len = 0;
        char *out = malloc(cap);
        char cwd[512] = "";
        if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
        add(&out, &len, &cap, "{\"argv\":[");
        for (int i = 0; i < argc; i++) {
            add(&out, &len, &cap, i ? ",\"" : "\"");
            json_str(&out, &len, &cap, argv[i]);
            add(&out, &len, &cap, "\"");
        }
        char nums[160];
        snprintf(nums, sizeof nums,
                 "],\"uid\":%d,\"gid\":%d,\"tmpWritable\":%s,\"rootWritable\":%s,"
                 "\"extension\":%s,\"cwd\":\"",
                 (int)getuid(), (int)getgid(), writable("/tmp/probe") ? "true" : "false",
                 writable("/probe") ? "true" : "false",
                 access("/tmp/ext-registered", F_OK) == 0 ? "true" : "false");
        add(&out, &len, &cap, nums);
        json_str(&out, &len, &cap, cwd);
        add(&out, &len, &cap, "\",\"env\":{");
        for (char **e = environ; *e; e++) {
            char *eq = strchr(*e, '=');
            if (!eq) continue;
            add(&out, &len, &cap, e == environ ? "\"" : ",\"");
            *eq = 0;
            json_str(&out, &len, &cap, *e);
            *eq = '=';
            add(&out, &len, &cap, "\":\"");
            json_str(&out, &len, &cap, eq + 1);
            add(&out, &len, &cap, "\"");
        }
        add(&out, &len, &cap, "},\"exists\":");
        /* {"exists": "/some/path"} in the event: whether that path exists here */
        char *ex = strstr(event, "\"exists\": \"");
        if (ex) {
            char path[256];
            ex += 11;
            size_t n = strcspn(ex, "\"");
            snprintf(path, sizeof path, "%.*s", (int)n, ex);
            add(&out, &len, &cap, access(path, F_OK) == 0 ? "true" : "false");
        } else {
            add(&out, &len, &cap, "null");
        }
        add(&out, &len, &cap, ",\"event\":");
        add(&out, &len, &cap, *event ? event : "null");
        add(&out, &len, &cap, "}");
        out[len] = 0;
        char path[400];
        snprintf(path, sizeof path, "/2018-06-01/runtime/invocation/%s/response", rid);
        free(http("POST", path, "Content-Type: application/json\r\n", out, NULL, NULL, 0));
        free(out);
        free(event);
    }
}
