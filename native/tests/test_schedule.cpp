// Golden tests of the flow-matching schedule math against the values in the spec (§3.2–§3.4, §3.9).
#include <cmath>
#include <vector>

#include "core/schedule.h"
#include "tests/math_test_util.h"

using namespace cfp;

TEST_CASE(generator_grid_endpoints_and_shape) {
  const FlowMatchScheduler g = generator_training_grid();
  CHECK(g.size() == 1000);
  CHECK_NEAR(g.timesteps()[0], 1000.0, 1e-9);
  CHECK_NEAR(g.sigmas()[0], 1.0, 1e-12);
  // t_999 = 1000 * 5u / (1 + 4u), u = 0.001
  CHECK_NEAR(g.timesteps()[999], 1000.0 * 0.005 / 1.004, 1e-9);
  CHECK_NEAR(g.timesteps()[999], 4.98, 0.005);
  for (size_t i = 1; i < g.size(); ++i) CHECK(g.timesteps()[i] < g.timesteps()[i - 1]);
  // t_i = 1000 * sigma_i throughout.
  for (size_t i = 0; i < g.size(); i += 97) CHECK_NEAR(g.timesteps()[i], 1000.0 * g.sigmas()[i], 1e-9);
}

TEST_CASE(ode_grid_golden_values) {
  const FlowMatchScheduler g = ode_grid();
  CHECK(g.size() == 48);
  CHECK_NEAR(g.timesteps()[0], 1000.0, 1e-9);
  CHECK_NEAR(g.timesteps()[12], 937.5, 1e-9);
  CHECK_NEAR(g.timesteps()[24], 833.3333333333, 1e-6);
  CHECK_NEAR(g.timesteps()[36], 625.0, 1e-9);
  CHECK_NEAR(g.timesteps()[47], 96.15, 0.005);
  // Past the last point Euler goes to sigma 0.
  CHECK(g.next_sigma_at(g.timesteps()[47]) == 0.0);
  CHECK_NEAR(g.next_sigma_at(1000.0), g.sigmas()[1], 0.0);
}

TEST_CASE(no_extra_step_grid_ends_at_sigma_min) {
  FlowMatchScheduler s(FlowMatchConfig{1000, 1.0, 1.0, 0.1, false});
  s.set_timesteps(10);
  CHECK(s.size() == 10);
  CHECK_NEAR(s.sigmas()[0], 1.0, 1e-12);
  CHECK_NEAR(s.sigmas()[9], 0.1, 1e-12);
  CHECK_NEAR(s.sigmas()[1], 0.9, 1e-12);
  // With extra_one_step the last point stops one spacing above sigma_min.
  FlowMatchScheduler e(FlowMatchConfig{1000, 1.0, 1.0, 0.0, true});
  e.set_timesteps(4);
  CHECK_NEAR(e.sigmas()[3], 0.25, 1e-12);
}

TEST_CASE(warped_step_lists) {
  const FlowMatchScheduler g = generator_training_grid();
  const std::vector<double> four = warped_step_list({1000, 750, 500, 250}, g);
  CHECK(four.size() == 4);
  CHECK_NEAR(four[0], 1000.0, 1e-9);
  CHECK_NEAR(four[1], 937.5, 1e-9);
  CHECK_NEAR(four[2], 833.33, 0.005);
  CHECK_NEAR(four[3], 625.0, 1e-9);
  const std::vector<double> two = warped_step_list({1000, 500}, g);
  CHECK(two.size() == 2);
  CHECK_NEAR(two[1], 833.3333333333, 1e-6);
  const std::vector<double> one = warped_step_list({1000}, g);
  CHECK(one.size() == 1 && one[0] == 1000.0);
  // A trailing 0 maps to T_ext[1000] = 0 and is dropped.
  CHECK(warped_step_list({1000, 750, 500, 250, 0}, g).size() == 4);
  // Unwarped lists pass through.
  const std::vector<double> raw = warped_step_list({1000, 750, 500, 250}, g, false);
  CHECK(raw[1] == 750.0 && raw[3] == 250.0);
  // The warped 4-step list coincides with the 48-step ODE snapshots (spec §1.6).
  const FlowMatchScheduler ode = ode_grid();
  CHECK_NEAR(four[1], ode.timesteps()[12], 1e-9);
  CHECK_NEAR(four[2], ode.timesteps()[24], 1e-9);
  CHECK_NEAR(four[3], ode.timesteps()[36], 1e-9);
  CHECK_THROWS(warped_step_list({1001}, g));
  CHECK_THROWS(warped_step_list({-1}, g));
  CHECK_THROWS(warped_step_list({}, g));
  CHECK_THROWS(warped_step_list({1000}, ode_grid()));  // warping needs the 1000-point grid
}

TEST_CASE(loss_weights_golden_values) {
  const FlowMatchScheduler g = generator_training_grid();
  CHECK_NEAR(g.weight_at(1000.0), 0.0, 1e-12);
  CHECK_NEAR(g.weight_at(500.0), 2.08, 0.005);
  CHECK_NEAR(g.weight_at(937.5), 0.40, 0.005);
  CHECK_NEAR(g.weight_at(833.33), 1.02, 0.006);
  CHECK_NEAR(g.weight_at(625.0), 1.91, 0.005);
  CHECK_NEAR(g.weight_at(250.0), 1.46, 0.005);
  CHECK_NEAR(g.weight_at(100.0), 0.64, 0.005);
  CHECK_NEAR(g.weight_at(20.0), 0.13, 0.005);
  double sum = 0.0;
  for (double w : g.weights()) sum += w;
  CHECK_NEAR(sum / 1000.0, 1.0, 1e-12);  // mean weight 1
  CHECK_THROWS(ode_grid().weight_at(500.0));  // not a training grid
}

TEST_CASE(nearest_grid_lookup) {
  const FlowMatchScheduler g = generator_training_grid();
  CHECK(g.nearest_index(1000.0) == 0);
  CHECK(g.nearest_index(2000.0) == 0);
  // context_noise = 0 snaps to the smallest grid point, sigma ~ 0.005 (spec §3.9).
  CHECK(g.nearest_index(0.0) == 999);
  CHECK_NEAR(g.sigma_at(0.0), 0.00498, 0.00001);
  // Exact grid values map to themselves; the midpoint between two grid points takes the first.
  for (size_t i : {size_t(1), size_t(250), size_t(500), size_t(998)}) {
    CHECK(g.nearest_index(g.timesteps()[i]) == i);
    const double mid = 0.5 * (g.timesteps()[i] + g.timesteps()[i + 1]);
    const size_t j = g.nearest_index(mid);
    CHECK(j == i || j == i + 1);
  }
  // Tie rule on an exactly representable grid: t in {1000, 750, 500, 250}, probe 875 -> first (1000).
  FlowMatchScheduler lin(FlowMatchConfig{1000, 1.0, 1.0, 0.0, true});
  lin.set_timesteps(4);
  CHECK(lin.nearest_index(875.0) == 0);
  CHECK(lin.nearest_index(876.0) == 0);
  CHECK(lin.nearest_index(874.0) == 1);
  CHECK_THROWS(FlowMatchScheduler().nearest_index(5.0));  // no grid yet
}

TEST_CASE(forward_process_and_conversions) {
  const std::vector<float> x0 = {0.5f, -1.25f, 2.0f, 0.0f};
  const std::vector<float> eps = {1.0f, 0.5f, -0.75f, -2.0f};
  const double sigma = 0.3;
  std::vector<float> xt(4), target(4), flow_back(4), x0_back(4);
  flow_add_noise(x0.data(), eps.data(), sigma, xt.data(), 4);
  flow_target(x0.data(), eps.data(), target.data(), 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK_NEAR(xt[i], 0.7 * x0[i] + 0.3 * eps[i], 1e-6);
    CHECK_NEAR(target[i], eps[i] - x0[i], 0.0);
  }
  // The true flow turns x_t back into x0, and x0 back into the flow.
  flow_to_x0(target.data(), xt.data(), sigma, x0_back.data(), 4);
  x0_to_flow(x0.data(), xt.data(), sigma, flow_back.data(), 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK_NEAR(x0_back[i], x0[i], 1e-6);
    CHECK_NEAR(flow_back[i], target[i], 1e-5);
  }
  CHECK_THROWS(x0_to_flow(x0.data(), xt.data(), 0.0, flow_back.data(), 4));
}

TEST_CASE(scheduler_lookup_ops_use_grid_sigma) {
  const FlowMatchScheduler g = generator_training_grid();
  const float x0 = 1.0f, eps = -1.0f;
  float xt = 0.0f;
  // t = 0.0 is not on the grid: add_noise uses the nearest grid sigma, not t / 1000.
  g.add_noise(&x0, &eps, 0.0, &xt, 1);
  const double s = g.sigma_at(0.0);
  CHECK_NEAR(xt, (1.0 - s) * 1.0 - s, 1e-7);
  CHECK(xt != 1.0f);
  // Euler on the straight-line flow of a single pair lands exactly on the next point's x_t.
  const FlowMatchScheduler ode = ode_grid();
  const float flow = eps - x0;
  for (size_t k = 0; k < ode.size(); ++k) {
    float x = 0.0f;
    ode.add_noise(&x0, &eps, ode.timesteps()[k], &x, 1);
    ode.euler_step(&flow, ode.timesteps()[k], &x, 1);
    const double sn = k + 1 < ode.size() ? ode.sigmas()[k + 1] : 0.0;
    CHECK_NEAR(x, (1.0 - sn) * x0 + sn * eps, 1e-6);
  }
}

TEST_CASE(unipc_grid_golden_values) {
  // The reference's integer timesteps for 50 steps, shift 5 (spec: 999, 995, 991, ..., 172, 92;
  // the full list computed with numpy from the reference's formula).
  const std::vector<long> expected = {999, 995, 991, 987, 982, 978, 973, 968, 963, 957, 952, 946, 940,
                                      934, 927, 920, 913, 906, 898, 890, 882, 873, 863, 854, 843, 833,
                                      821, 809, 796, 783, 768, 753, 737, 720, 701, 681, 660, 636, 611,
                                      584, 555, 522, 487, 448, 405, 356, 302, 241, 172, 92};
  const UniPCGrid grid = unipc_grid(50, 5.0);
  CHECK(grid.timesteps.size() == 50);
  CHECK(grid.sigmas.size() == 51);
  for (size_t i = 0; i < expected.size() && i < grid.timesteps.size(); ++i)
    CHECK(grid.timesteps[i] == expected[i]);
  CHECK(grid.sigmas.back() == 0.0);
  CHECK_NEAR(grid.sigmas[0], shift_sigma(0.999, 5.0), 1e-12);
}

TEST_CASE(dmd_timestep_shift_and_clamp) {
  CHECK_NEAR(dmd_timestep(0), 20.0, 0.0);     // clamped up
  CHECK_NEAR(dmd_timestep(999), 980.0, 0.0);  // 999.8 clamped down
  CHECK_NEAR(dmd_timestep(500), 833.3333333333, 1e-6);
  CHECK_NEAR(dmd_timestep(250), 625.0, 1e-9);
  CHECK_NEAR(dmd_timestep(5), 1000.0 * 0.025 / 1.02, 1e-9);  // 24.5, inside the clamp
  CHECK_THROWS(dmd_timestep(1000));
}

TEST_CASE(bf16_rounding_of_timesteps) {
  CHECK(round_to_bf16(512.0f) == 512.0f);
  CHECK(round_to_bf16(513.0f) == 512.0f);
  CHECK(round_to_bf16(514.0f) == 512.0f);  // tie -> even mantissa
  CHECK(round_to_bf16(515.0f) == 516.0f);
  CHECK(round_to_bf16(518.0f) == 520.0f);  // tie -> even mantissa
  CHECK(round_to_bf16(937.5f) == 936.0f);
  CHECK(round_to_bf16(1000.0f) == 1000.0f);
  CHECK(round_to_bf16(-3.0f) == -3.0f);
  CHECK(std::isnan(round_to_bf16(std::nanf(""))));
  CHECK(std::isinf(round_to_bf16(INFINITY)));
}

TEST_MAIN()
