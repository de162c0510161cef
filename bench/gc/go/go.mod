module gortgcbench

go 1.19
