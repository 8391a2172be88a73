# docs/plots/simulate-spike.gp — the plot in docs/scale.md ("scale simulate"),
# made from `corralctl scale simulate --steps`:
#   corralctl scale simulate --trace tests/traces/spike.csv --steps spike-steps.csv
#   gnuplot -e "steps='spike-steps.csv'" docs/plots/simulate-spike.gp > docs/plots/simulate-spike.svg
if (!exists("steps")) steps = 'spike-steps.csv'
set terminal svg size 900,640 dynamic font "sans,11"
set datafile separator ","
set key autotitle columnheader
set multiplot layout 2,1
policies = "jobs_n+2sqrt(n) jobs_x1.3 queue fixed_at_peak fixed_at_mean"
name(i) = system(sprintf("echo '%s' | cut -d' ' -f%d | tr _ ' '", policies, i))
set xlabel "minutes into the trace"
set ylabel "hosts"
set title "spike.csv: hosts up (launching + ready + draining) per policy, and the load in hosts (running jobs / 4)"
set key top right
plot for [i=1:5] steps using ($2/60):(strcol(1) eq name(i) ? $6+$7+$8 : NaN) with steps lw 1.5 title name(i), \
     steps using ($2/60):(strcol(1) eq name(1) ? $3/4.0 : NaN) with steps lw 2 dt 2 lc "black" title "load (running / 4)"
set ylabel "USD"
set title "cost so far"
set key top left
plot for [i=1:5] steps using ($2/60):(strcol(1) eq name(i) ? $11 : NaN) with lines lw 1.5 title name(i)
unset multiplot
