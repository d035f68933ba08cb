# Varnish for the conformance suite: the built-in VCL (its defaults for
# cookies, authorization, TTLs and grace) and one backend, the suite's test
# origin. @ORIGIN_PORT@ is filled in by bench/scripts/conformance.sh.
vcl 4.1;
backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}
