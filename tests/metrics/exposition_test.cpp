#include "metrics/exposition.h"

#include <gtest/gtest.h>

namespace tau::metrics {
namespace {

TEST(Exposition, WritesHelpTypeAndLabelledSamples) {
  Exposition out;
  out.family("jobs_total", "counter", "Jobs done.");
  out.sample("jobs_total", {{"queue", "a"}, {"code", "2xx"}}, 3);
  out.sample("jobs_total", {}, 12345678);
  EXPECT_EQ(out.text(),
            "# HELP jobs_total Jobs done.\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{queue=\"a\",code=\"2xx\"} 3\n"
            "jobs_total 12345678\n");
}

TEST(Exposition, EscapesLabelValuesAndHelpText) {
  Exposition out;
  out.family("x", "gauge", "a \\ b\nc \"d\"");
  out.sample("x", {{"path", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(out.text(),
            "# HELP x a \\\\ b\\nc \"d\"\n"
            "# TYPE x gauge\n"
            "x{path=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Exposition, FormatsValuesSoTheyReadBackExactly) {
  Exposition out;
  out.sample("a", {}, 0.0001);
  out.sample("b", {}, 0.5);
  out.sample("c", {}, 1e-9);
  out.sample("d", {}, 0);
  EXPECT_EQ(out.text(), "a 0.0001\nb 0.5\nc 1e-09\nd 0\n");
}

TEST(Exposition, WritesCumulativeBucketsSumAndCount) {
  Histogram histogram({0.5, 2});
  histogram.observe(0.25);
  histogram.observe(1);
  histogram.observe(3);
  Exposition out;
  out.histogram("wait_seconds", {{"route", "/r"}}, histogram.snapshot());
  EXPECT_EQ(out.text(),
            "wait_seconds_bucket{route=\"/r\",le=\"0.5\"} 1\n"
            "wait_seconds_bucket{route=\"/r\",le=\"2\"} 2\n"
            "wait_seconds_bucket{route=\"/r\",le=\"+Inf\"} 3\n"
            "wait_seconds_sum{route=\"/r\"} 4.25\n"
            "wait_seconds_count{route=\"/r\"} 3\n");
}

}  // namespace
}  // namespace tau::metrics
