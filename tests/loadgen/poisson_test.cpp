// The load generator's arrival schedule (examples/loadgen/poisson.hpp): exponential gaps of the
// right mean and shape, Poisson counts per window, reproducibility by seed. Statistical bounds
// are many standard errors wide (the seeds are fixed, so the results are deterministic anyway).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "poisson.hpp"

namespace loadgen {
namespace {

constexpr int kSamples = 200'000;

TEST(PoissonSchedule, MeanInterArrivalIsOneOverRate) {
  for (double rate : {100.0, 10'000.0, 1'000'000.0}) {
    PoissonSchedule s(rate, 11);
    double sum = 0;
    for (int i = 0; i < kSamples; ++i) sum += s.next_gap_ns();
    const double mean = sum / kSamples, want = 1e9 / rate;
    // Standard error of the mean: want / sqrt(200000) = 0.22%.
    EXPECT_NEAR(mean, want, want * 0.015) << "rate " << rate;
  }
}

TEST(PoissonSchedule, GapsAreExponential) {
  PoissonSchedule s(50'000, 5);  // mean gap 20 us
  const double mean = s.mean_gap_ns();
  double sum = 0, sum2 = 0;
  int below_mean = 0, below_tenth = 0;
  for (int i = 0; i < kSamples; ++i) {
    const double g = s.next_gap_ns();
    ASSERT_GE(g, 0.0);
    sum += g;
    sum2 += g * g;
    below_mean += g < mean;
    below_tenth += g < mean / 10;
  }
  const double m = sum / kSamples, sd = std::sqrt(sum2 / kSamples - m * m);
  EXPECT_NEAR(sd / m, 1.0, 0.03);  // coefficient of variation of an exponential is 1
  EXPECT_NEAR(below_mean / double(kSamples), 1 - std::exp(-1.0), 0.01);   // P(X < mean)
  EXPECT_NEAR(below_tenth / double(kSamples), 1 - std::exp(-0.1), 0.01);  // P(X < mean/10)
}

TEST(PoissonSchedule, CountsPerWindowArePoisson) {
  // 10,000/s in 1 ms windows: counts ~ Poisson(10), whose variance equals its mean.
  PoissonSchedule s(10'000, 9);
  const double window = 1e6;
  std::vector<int> counts(20'000, 0);
  for (double t = s.next_ns(); t < window * counts.size(); t = s.next_ns())
    ++counts[static_cast<size_t>(t / window)];
  double sum = 0, sum2 = 0;
  for (int c : counts) sum += c, sum2 += double(c) * c;
  const double m = sum / counts.size(), var = sum2 / counts.size() - m * m;
  EXPECT_NEAR(m, 10.0, 0.2);
  EXPECT_NEAR(var / m, 1.0, 0.06);  // a fixed-rate schedule would give 0
}

TEST(PoissonSchedule, TimesIncreaseAndSeedReproduces) {
  PoissonSchedule a(1000, 77), b(1000, 77), c(1000, 78);
  double prev = 0;
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    const double ta = a.next_ns(), tb = b.next_ns(), tc = c.next_ns();
    ASSERT_GT(ta, prev);
    prev = ta;
    ASSERT_EQ(ta, tb);
    differ += ta != tc;
  }
  EXPECT_GT(differ, 990);
}

TEST(Rng, UniformIsInUnitIntervalAndBalanced) {
  Rng r(1);
  double sum = 0;
  for (int i = 0; i < kSamples; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / kSamples, 0.5, 0.005);
}

}  // namespace
}  // namespace loadgen
