# Varnish (malloc storage) in front of the same origin. Varnish caches whole
# objects and serves ranges of them; streaming is on by default.
vcl 4.1;
backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}
sub vcl_recv {
    # Cache by URL only, like the other caches in the comparison.
    unset req.http.Cookie;
}
sub vcl_backend_response {
    set beresp.do_stream = true;
    set beresp.ttl = 1h;
}
