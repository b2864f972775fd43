// Boost.JSON and Boost.URL, compiled here with the fuzzers' instrumentation. Their definitions in
// the fuzz executables take precedence over Debian's shared libraries, which stay linked (the
// gateway's libraries name them) but unused.
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
