/* agent.h — placeholder: being written */
#pragma once
